//! The client's transports against real clusters: mutual TLS with go-dqlite `app` nodes
//! (`tlsnode`, set up like `app.WithTLS(app.SimpleTLSConfig(..))`), every bad-certificate
//! case as its own typed error within the dial deadline, unix sockets, and a dial function
//! of the caller's own.

use std::future::Future;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dqlite_client::{
    BoxStream, Config, Connection, Error, NodeClient, Plain, Pool, PoolOptions, Runtime, TlsConfig,
    TlsErrorKind,
};
use dqlite_smol::Smol;
use dqlite_tests::harness::{Cluster, ServerCommand};
use dqlite_tests::nodes::{shell, unix_front_name, TlsCluster};
use dqlite_tests::tls::Identity;
use dqlite_tokio::Tokio;
use support::{reads_now, Counting};

mod support;

fn addrs(cluster: &Cluster) -> Vec<String> {
    cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect()
}

/// The client side of go-dqlite's one-certificate setup: trust the cluster certificate and
/// present it.
fn cluster_tls(id: &Identity) -> TlsConfig {
    let (cert, key) = (id.cert_pem.as_bytes(), id.key_pem.as_bytes());
    TlsConfig::from_pem(cert, cert, key).expect("TLS settings")
}

fn config(tls: TlsConfig) -> Config {
    Config::new()
        .database("tls")
        .dial_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(10))
        .tls(tls)
}

async fn queries_and_failover<R: Runtime>(rt: R, cluster: &mut TlsCluster, tls: TlsConfig) {
    let seeds = addrs(cluster);
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let options = PoolOptions::new().min_size(2).max_size(4);
    let pool = Pool::new(rt.clone(), &seeds, config(tls.clone()), options)
        .await
        .expect("pool over TLS");
    pool.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)", ())
        .await
        .unwrap();
    pool.transaction(async |tx| {
        tx.execute("INSERT INTO t VALUES (1)", ()).await?;
        tx.execute("INSERT INTO t VALUES (2)", ()).await?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let n: i64 = pool.fetch_val("SELECT count(*) FROM t", ()).await.unwrap();
    assert!(n >= 2);
    // The pool refreshed its node list from the cluster over TLS.
    assert_eq!(pool.nodes().len(), 3);

    // Cluster requests on a chosen node, over TLS too.
    let mut node = NodeClient::connect(rt.clone(), seeds[1], config(tls.clone()))
        .await
        .expect("node client over TLS");
    assert_eq!(node.cluster().await.unwrap().len(), 3);

    // The leader dies: the pool finds the new one, still over TLS.
    let leader = cluster.wait_ready(3);
    cluster.kill(leader);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match pool.execute("INSERT INTO t VALUES (3)", ()).await {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no write on a new leader over TLS: {e}"
            ),
        }
    }
    cluster.restart(leader);
}

#[test]
fn queries_transactions_pool_and_failover_over_mutual_tls() {
    let mut cluster = TlsCluster::start(3);
    cluster.wait_ready(3);
    let tls = cluster_tls(cluster.identity());
    cross_check_with_go_shell(&cluster, tls.clone());
    blocking_core_over_tls(&cluster);
    smol::block_on(direct_reads_through_tls(&cluster, tls.clone()));
    smol::block_on(queries_and_failover(Smol, &mut cluster, tls.clone()));
    cluster.wait_ready(3);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(queries_and_failover(Tokio, &mut cluster, tls));
}

/// Busy-polling and read coalescing work over TLS: the TLS stream's `read_now` decrypts what
/// its socket's own `read_now` (counted by the `Counting` runtime) reads, and what it hands
/// over is the plaintext, intact.
async fn direct_reads_through_tls(cluster: &TlsCluster, tls: TlsConfig) {
    let leader = cluster.wait_ready(3);
    let address = cluster.db_address(leader).to_string();
    let mut conn = Connection::connect(Counting, &address, config(tls))
        .await
        .expect("connection over TLS");
    // A query the server takes a while to answer, so the reply is never there at the first
    // look: the wait for it busy-polls through the TLS layer, unless waits that found
    // nothing made the connection skip the next ones (at most 63 in a row).
    let count = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000) \
                 SELECT count(*) FROM c";
    let mut waits = 0;
    loop {
        let (reads, n) = reads_now(conn.fetch_val::<i64>(count, ())).await;
        assert_eq!(n.unwrap(), 50_000);
        if reads > 0 {
            break;
        }
        waits += 1;
        assert!(waits < 200, "no direct read through TLS in {waits} waits");
    }
    // A long result, read with naps and direct reads between them: every row intact.
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS tls_big (x INTEGER, t TEXT); DELETE FROM tls_big; \
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) \
         INSERT INTO tls_big SELECT x, printf('%040d', x) FROM c",
    )
    .await
    .unwrap();
    let mut stream = conn
        .stream("SELECT x, t FROM tls_big ORDER BY x", ())
        .await
        .expect("stream over TLS");
    let mut next = 1i64;
    while let Some(batch) = stream.next_batch().await.expect("batch over TLS") {
        for row in batch.rows() {
            match row {
                [dqlite_client::Value::Integer(x), dqlite_client::Value::Text(t)] => {
                    assert_eq!((*x, t.as_str()), (next, format!("{next:040}").as_str()));
                    next += 1;
                }
                other => panic!("unexpected row {other:?}"),
            }
        }
    }
    assert_eq!(next, 20_001, "rows missing");
}

/// The bare protocol core over a blocking TLS socket (the custom-event-loop path): the same
/// rustls client settings the async client builds from PEM.
fn blocking_core_over_tls(cluster: &TlsCluster) {
    use dqlite_blocking::BlockingConn;
    use dqlite_proto::{Reply, Value};
    let id = cluster.identity();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(id.cert_der.clone()))
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        id.key_der.clone(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![rustls::pki_types::CertificateDer::from(id.cert_der.clone())],
            key,
        )
        .unwrap();
    let config = Arc::new(config);
    let leader = cluster.wait_ready(3);
    let address = cluster.db_address(leader).to_string();
    let mut conn = BlockingConn::connect_tls(&address, config.clone(), "127.0.0.1").unwrap();
    assert_eq!(conn.leader().unwrap().address.as_str(), address);
    assert_eq!(conn.call(|p| p.open("blocking")).unwrap(), [Reply::Opened]);
    conn.call(|p| p.exec_sql("CREATE TABLE IF NOT EXISTS b (x INTEGER)", &[]))
        .unwrap();
    conn.call(|p| p.exec_sql("INSERT INTO b VALUES (?)", &[Value::Integer(5)]))
        .unwrap();
    let replies = conn
        .call(|p| p.query_sql("SELECT count(*) FROM b WHERE x = ?", &[Value::Integer(5)]))
        .unwrap();
    let Some(Reply::Rows(batch)) = replies.last() else {
        panic!("{replies:?}")
    };
    assert!(batch
        .rows()
        .next()
        .is_some_and(|r| r[0] == Value::Integer(1)));
    // The same settings naming another host: refused, never plaintext.
    let mut wrong = BlockingConn::connect_tls(&address, config.clone(), "dqlite.invalid").unwrap();
    assert!(wrong.leader().is_err());
    // The blocking client over the same settings finds the leader from a follower (each
    // node's certificate checked against the host of its address).
    let follower = cluster.db_address((leader + 1) % 3).to_string();
    let tls = dqlite_blocking::Config::new("blocking").tls(config);
    let mut client = dqlite_blocking::Client::connect_cluster(&[&follower], &tls).unwrap();
    assert_eq!(client.address(), address);
    let rows = client
        .query("SELECT count(*) FROM b WHERE x = ?", &[Value::Integer(5)])
        .unwrap();
    assert_eq!(rows.get(0), Some(&[Value::Integer(1)][..]));
}

/// What this client writes over TLS, go-dqlite's shell reads with the same certificate, and
/// the other way round.
fn cross_check_with_go_shell(cluster: &TlsCluster, tls: TlsConfig) {
    let servers = addrs(cluster).join(",");
    let go = |command: &str| {
        let out = shell(
            &servers,
            Some(cluster.pem_files()),
            "cross",
            command,
            Duration::from_secs(60),
        );
        assert!(out.success(), "{command}: {out:?}");
        out.stdout
    };
    let seeds = addrs(cluster);
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    smol::block_on(async {
        let config = config(tls).database("cross");
        let mut conn = dqlite_client::connect_cluster(Smol, &seeds, config)
            .await
            .expect("client over TLS");
        conn.execute("CREATE TABLE c (who TEXT)", ()).await.unwrap();
        conn.execute("INSERT INTO c VALUES (?)", ("rust",))
            .await
            .unwrap();
        assert!(go("SELECT who FROM c").contains("rust"));
        go("INSERT INTO c VALUES ('go')");
        let who: Vec<String> = conn
            .fetch_as::<(String,)>("SELECT who FROM c ORDER BY who", ())
            .await
            .unwrap()
            .into_iter()
            .map(|(w,)| w)
            .collect();
        assert_eq!(who, ["go", "rust"]);
    });
}

/// `Connection::connect` to `address` with `tls` fails with a TLS error of `kind`.
async fn refused(address: &str, tls: TlsConfig, kind: TlsErrorKind) {
    let e = Connection::connect(Smol, address, config(tls))
        .await
        .err()
        .unwrap_or_else(|| panic!("{kind:?}: connected"));
    match &e {
        Error::Tls { kind: got, .. } => assert_eq!(*got, kind, "{e}"),
        other => panic!("expected a TLS error {kind:?}, got {other:?}"),
    }
}

fn within<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = smol::block_on(f);
    assert!(
        started.elapsed() < limit,
        "took {:?}, more than {limit:?}",
        started.elapsed()
    );
    out
}

#[test]
fn every_bad_certificate_is_its_own_typed_error() {
    let cluster = TlsCluster::start(1);
    let leader = cluster.wait_ready(1);
    let address = cluster.db_address(leader).to_string();
    let good = cluster.identity().clone();
    let (cert, key) = (good.cert_pem.as_bytes(), good.key_pem.as_bytes());
    let stranger = Identity::unknown_ca();
    let expired = good.expired();
    smol::block_on(async {
        // The right settings work.
        let mut conn = Connection::connect(Smol, &address, config(cluster_tls(&good)))
            .await
            .expect("good certificate");
        let one: i64 = conn.fetch_val("SELECT 1", ()).await.unwrap();
        assert_eq!(one, 1);

        // A server signed by a CA the client does not trust.
        let trusts_stranger = TlsConfig::from_pem(stranger.cert_pem.as_bytes(), cert, key).unwrap();
        refused(&address, trusts_stranger, TlsErrorKind::UnknownIssuer).await;
        // A certificate not valid for the name checked.
        let other_name = cluster_tls(&good).server_name("dqlite.invalid").unwrap();
        refused(&address, other_name, TlsErrorKind::NameMismatch).await;
        // No client certificate: the node refuses the client.
        let anonymous = TlsConfig::server_only(cert).unwrap();
        refused(&address, anonymous, TlsErrorKind::Refused).await;
        // An expired client certificate: refused too.
        let stale_client = TlsConfig::from_pem(
            cert,
            expired.cert_pem.as_bytes(),
            expired.key_pem.as_bytes(),
        )
        .unwrap();
        refused(&address, stale_client, TlsErrorKind::Refused).await;
    });

    // A server whose own certificate has expired (go-dqlite nodes refuse to run with one:
    // they dial each other, so an in-process rustls server plays the node).
    let old_address = expired_server(&expired);
    smol::block_on(refused(
        &old_address,
        cluster_tls(&expired),
        TlsErrorKind::Expired,
    ));

    // A plaintext node: a clear error, never a plaintext fallback.
    let plain = Cluster::start(1);
    let plain_leader = plain.wait_ready(1);
    let plain_address = plain.db_address(plain_leader).to_string();
    smol::block_on(refused(
        &plain_address,
        cluster_tls(&good),
        TlsErrorKind::NotTls,
    ));

    // A server that accepts and then says nothing: a timeout within the dial deadline.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_address = silent.local_addr().unwrap().to_string();
    let e = within(Duration::from_secs(30), async {
        let config = config(cluster_tls(&good)).dial_timeout(Duration::from_millis(500));
        Connection::connect(Smol, &silent_address, config)
            .await
            .expect_err("a silent server")
    });
    assert!(e.is_timeout(), "{e:?}");
    drop(silent);
}

/// A TLS server on a loopback port presenting `id` (expired), for one handshake.
fn expired_server(id: &Identity) -> String {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let chain = vec![CertificateDer::from(id.cert_der.clone())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_der.clone()));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let config = std::sync::Arc::new(config);
    std::thread::spawn(move || {
        if let Ok((mut socket, _)) = listener.accept() {
            socket
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut server = rustls::ServerConnection::new(config).unwrap();
            // Runs until the client gives up on the certificate.
            while server.is_handshaking() {
                if server.complete_io(&mut socket).is_err() {
                    break;
                }
            }
        }
    });
    address
}

#[test]
fn unix_sockets_reach_nodes_and_lead_to_the_leader() {
    let cluster = Cluster::start_with(ServerCommand::plain_node().with_unix_front(), 3);
    let leader = cluster.wait_ready(3);
    let fronts: Vec<String> = cluster
        .db_addresses()
        .into_iter()
        .map(unix_front_name)
        .collect();
    smol::block_on(async {
        let cfg = || Config::new().database("unix");
        // A node by its abstract unix address.
        let mut node = NodeClient::connect(Smol, &fronts[(leader + 1) % 3], cfg())
            .await
            .expect("node client over a unix socket");
        // A follower learns who leads from the leader's heartbeats: wait until it names one.
        let deadline = Instant::now() + Duration::from_secs(30);
        let named = loop {
            if let Some(named) = node.leader().await.unwrap() {
                break named;
            }
            assert!(
                Instant::now() < deadline,
                "the follower named no leader within 30 s"
            );
            smol::Timer::after(Duration::from_millis(50)).await;
        };
        assert_eq!(
            named.address.as_str(),
            cluster.db_address(leader).to_string()
        );
        // The leader's database over its unix socket.
        let mut conn = Connection::connect(Smol, &fronts[leader], cfg())
            .await
            .expect("connection over a unix socket");
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        conn.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        // Seeded with unix addresses only, discovery follows the leader the nodes name (a
        // member of their cluster).
        let seeds: Vec<&str> = fronts.iter().map(String::as_str).collect();
        let pool = Pool::new(Smol, &seeds, cfg(), PoolOptions::new())
            .await
            .expect("pool seeded with unix addresses");
        let n: i64 = pool.fetch_val("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(n, 1);
    });
    // tokio dials unix sockets too.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn =
                Connection::connect(Tokio, &fronts[leader], Config::new().database("unix"))
                    .await
                    .expect("tokio over a unix socket");
            let n: i64 = conn.fetch_val("SELECT count(*) FROM t", ()).await.unwrap();
            assert_eq!(n, 1);
        });
}

/// A dial function of the caller's own reaches every node the pool needs (discovery, the
/// leader, the refreshed membership), and its failures are the pool's connection errors.
#[test]
fn a_custom_dial_function_carries_every_connection() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let dialed: Arc<Mutex<Vec<String>>> = Arc::default();
    let refusals = Arc::new(AtomicUsize::new(0));
    let seen = dialed.clone();
    let dial = move |address: &str| {
        seen.lock().unwrap().push(address.to_owned());
        let address = address.to_owned();
        Box::pin(async move {
            let stream = async_net::TcpStream::connect(address.as_str()).await?;
            Ok(Box::new(Plain::new(stream)) as BoxStream)
        }) as dqlite_client::BoxFuture<'static, std::io::Result<BoxStream>>
    };
    let refused = refusals.clone();
    let refusing = move |_: &str| {
        refused.fetch_add(1, Ordering::Relaxed);
        let e = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "not allowed here");
        Box::pin(std::future::ready(Err(e)))
            as dqlite_client::BoxFuture<'static, std::io::Result<BoxStream>>
    };
    let seed = cluster.db_address((leader + 1) % 3).to_string();
    smol::block_on(async {
        let config = Config::new().database("dial").dial_with(Arc::new(dial));
        let pool = Pool::new(Smol, &[seed.as_str()], config, PoolOptions::new())
            .await
            .expect("pool through the dial function");
        let v: i64 = pool.fetch_val("SELECT 6 * 7", ()).await.unwrap();
        assert_eq!(v, 42);
        let dialed = dialed.lock().unwrap().clone();
        assert!(dialed.contains(&seed), "{dialed:?}");
        let leader_address = cluster.db_address(leader).to_string();
        assert!(dialed.contains(&leader_address), "{dialed:?}");

        let config = Config::new()
            .connect_timeout(Duration::from_secs(2))
            .dial_with(Arc::new(refusing));
        let e = Connection::connect(Smol, &seed, config)
            .await
            .expect_err("a refusing dial function");
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(e.to_string().contains("not allowed here"), "{e}");
    });
    assert!(refusals.load(Ordering::Relaxed) > 0);
}
