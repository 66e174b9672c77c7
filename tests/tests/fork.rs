//! Connections and pools refuse to be used from a `fork()`ed child (they would share the
//! parent's socket) and keep working in the parent.

use dqlite_client::Error;
use dqlite_tests::harness::Cluster;

#[test]
fn forked_child_gets_a_clear_error_and_parent_is_unaffected() {
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let address = cluster.db_address(leader).to_string();
    smol::block_on(async {
        let mut conn = dqlite_smol::connect(&address).await.unwrap();
        let pool = dqlite_smol::create_pool(&[address.as_str()]).await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();

        // SAFETY: the child only polls futures that fail before any I/O, then _exits.
        #[allow(unsafe_code)]
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let conn_refused = matches!(
                smol::block_on(conn.execute("INSERT INTO t VALUES (1)", ())),
                Err(Error::Forked { .. })
            );
            let pool_refused = matches!(smol::block_on(pool.acquire()), Err(Error::Forked { .. }));
            let code = if conn_refused && pool_refused { 0 } else { 1 };
            #[allow(unsafe_code)]
            unsafe {
                libc::_exit(code)
            };
        }
        let mut status = 0;
        #[allow(unsafe_code)]
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status),
            "child did not exit normally: {status}"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "child was not refused with Error::Forked"
        );

        // The parent's objects are untouched: nothing was written by the child.
        conn.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        let all = pool.fetch_all("SELECT x FROM t", ()).await.unwrap();
        assert_eq!(all, vec![vec![dqlite_client::Value::Integer(2)]]);
    });
}
