//! `sqlx::migrate::Migrator` on real dqlite clusters: concurrent runners (tasks and
//! processes) apply each migration exactly once, a leader killed mid-run leaves a state a
//! rerun converges from, checksums are verified, a failed run applies nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dqlite_tests::harness::Cluster;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx_dqlite::{DqlitePool, DqlitePoolOptions};

/// The migrations: each records itself in `marks`, so one applied twice shows as two rows.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "1_users.sql",
        "CREATE TABLE marks (m INTEGER NOT NULL);
         CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO marks VALUES (1);",
    ),
    (
        "2_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT; INSERT INTO marks VALUES (2);",
    ),
    (
        "3_bulk.sql",
        "CREATE TABLE bulk (x INTEGER PRIMARY KEY, pad TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
         INSERT INTO bulk SELECT x, printf('%0200d', x) FROM c;
         INSERT INTO marks VALUES (3);",
    ),
    (
        "4_index.sql",
        // Also keeps the lock for a while (a long computation that writes one row).
        "CREATE INDEX users_by_name ON users (name);
         CREATE TABLE spin AS WITH RECURSIVE c(x) AS
             (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT sum(x) AS s FROM c;
         INSERT INTO marks VALUES (4);",
    ),
    (
        "5_seed.sql",
        "INSERT INTO users (name, email) VALUES ('root', 'root@example.invalid');
         INSERT INTO marks VALUES (5);",
    ),
];

fn write_migrations(dir: &Path, migrations: &[(&str, &str)]) {
    for (name, sql) in migrations {
        std::fs::write(dir.join(name), sql).unwrap();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn url(cluster: &Cluster, db: &str) -> String {
    let nodes: Vec<String> = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();
    // Runners wait for each other's lock: a generous busy timeout.
    format!("dqlite://{}/{db}?busy_timeout=60", nodes.join(","))
}

async fn pool(url: &str) -> DqlitePool {
    DqlitePoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(60))
        .connect(url)
        .await
        .unwrap()
}

/// Every migration recorded once with its checksum, and applied once.
async fn assert_applied_once(pool: &DqlitePool, migrator: &Migrator) {
    let history: Vec<(i64, Vec<u8>, i64)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap();
    let expected: Vec<(i64, Vec<u8>, i64)> = migrator
        .iter()
        .map(|m| (m.version, m.checksum.to_vec(), 1))
        .collect();
    assert_eq!(history, expected);
    let marks: Vec<i64> = sqlx::query_scalar("SELECT m FROM marks ORDER BY m")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(marks, [1, 2, 3, 4, 5], "each migration ran exactly once");
    let bulk: i64 = sqlx::query_scalar("SELECT count(*) FROM bulk")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(bulk, 2000);
}

async fn version(pool: &DqlitePool) -> i64 {
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[test]
fn five_runner_tasks_at_once_apply_each_migration_exactly_once() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), MIGRATIONS);
    runtime().block_on(async {
        for (db, locking) in [("tasks", true), ("tasks_unlocked", false)] {
            let url = url(&cluster, db);
            let mut migrator = Migrator::new(dir.path()).await.unwrap();
            migrator.set_locking(locking);
            let migrator = std::sync::Arc::new(migrator);
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(5));
            let runners: Vec<_> = (0..5)
                .map(|_| {
                    let (url, migrator, barrier) = (url.clone(), migrator.clone(), barrier.clone());
                    tokio::spawn(async move {
                        let pool = pool(&url).await;
                        barrier.wait().await;
                        migrator.run(&pool).await.unwrap();
                        version(&pool).await
                    })
                })
                .collect();
            for r in runners {
                assert_eq!(r.await.unwrap(), 5, "every runner ends at the last version");
            }
            let pool = pool(&url).await;
            assert_applied_once(&pool, &migrator).await;
            // A rerun applies nothing.
            migrator.run(&pool).await.unwrap();
            assert_applied_once(&pool, &migrator).await;
        }
    });
}

/// Runs the migrations of `SQLX_DQLITE_MIGRATIONS` on `SQLX_DQLITE_URL` once: the body of
/// the runner processes started by `five_runner_processes_at_once_...` (run on its own it
/// fails for want of the variables).
#[test]
#[ignore = "a runner process started by five_runner_processes_at_once_apply_each_migration_exactly_once"]
fn migration_runner_process() {
    let url = std::env::var("SQLX_DQLITE_URL").expect("SQLX_DQLITE_URL");
    let dir = std::env::var("SQLX_DQLITE_MIGRATIONS").expect("SQLX_DQLITE_MIGRATIONS");
    runtime().block_on(async {
        let migrator = Migrator::new(Path::new(&dir)).await.unwrap();
        let pool = pool(&url).await;
        migrator.run(&pool).await.unwrap();
        assert_eq!(version(&pool).await, 5);
    });
}

#[test]
fn five_runner_processes_at_once_apply_each_migration_exactly_once() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), MIGRATIONS);
    let url = url(&cluster, "processes");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..5)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "migration_runner_process",
                    "--exact",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env("SQLX_DQLITE_URL", &url)
                .env("SQLX_DQLITE_MIGRATIONS", dir.path())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a runner process failed: {:?}",
            out.status
        );
    }
    runtime().block_on(async {
        let migrator = Migrator::new(dir.path()).await.unwrap();
        assert_applied_once(&pool(&url).await, &migrator).await;
    });
}

#[test]
fn leader_killed_during_runs_then_a_rerun_converges() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), MIGRATIONS);
    let url = url(&cluster, "failover");
    let rt = runtime();
    let migrator = std::sync::Arc::new(rt.block_on(Migrator::new(dir.path())).unwrap());
    // Runners that start at once and keep rerunning until they succeed, as an application
    // that retries its start-up would.
    let runners: Vec<_> = (0..5)
        .map(|_| {
            let (url, migrator) = (url.clone(), migrator.clone());
            rt.spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut failures = Vec::new();
                loop {
                    let attempt = async {
                        let pool = DqlitePoolOptions::new()
                            .max_connections(1)
                            .acquire_timeout(Duration::from_secs(30))
                            .connect(&url)
                            .await?;
                        migrator.run(&pool).await?;
                        Ok::<_, MigrateError>(version(&pool).await)
                    };
                    match attempt.await {
                        Ok(v) => return (v, failures),
                        Err(e) => {
                            assert!(
                                Instant::now() < deadline,
                                "no convergence: {e} after {failures:?}"
                            );
                            failures.push(e.to_string());
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            })
        })
        .collect();
    // Kill the leader while a runner holds the migration lock: seen from another connection
    // as BUSY on `BEGIN IMMEDIATE` (tried without waiting).
    rt.block_on(async {
        let nodes: Vec<String> = cluster
            .db_addresses()
            .iter()
            .map(|a| a.to_string())
            .collect();
        let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let config = dqlite_client::Config::new()
            .database("failover")
            .busy_timeout(Duration::ZERO);
        let mut probe = dqlite_tokio::connect_cluster(&nodes, config).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match probe.execute("BEGIN IMMEDIATE", ()).await {
                Ok(_) => {
                    probe.execute("ROLLBACK", ()).await.unwrap();
                }
                Err(e) if e.is_busy() => break,
                Err(e) => panic!("probe: {e}"),
            }
            assert!(Instant::now() < deadline, "no runner took the lock");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    cluster.kill(leader);
    let mut failed_attempts = 0;
    for r in runners {
        let (v, failures) = rt.block_on(r).unwrap();
        assert_eq!(v, 5);
        failed_attempts += failures.len();
    }
    // The lock holder's run died with the leader.
    assert!(failed_attempts >= 1, "no run was interrupted");
    eprintln!("leader killed mid-run: {failed_attempts} failed runs before convergence");
    rt.block_on(async {
        let pool = pool(&url).await;
        assert_applied_once(&pool, &migrator).await;
    });
}

#[test]
fn checksums_are_verified_and_a_failed_run_applies_nothing() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let url = url(&cluster, "checks");
        let pool = pool(&url).await;
        write_migrations(dir.path(), &MIGRATIONS[..2]);
        Migrator::new(dir.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        assert_eq!(version(&pool).await, 2);

        // A run whose third migration fails: the second new one (fine on its own) is not
        // applied either, and the lock is released.
        write_migrations(
            dir.path(),
            &[
                MIGRATIONS[2],
                ("4_broken.sql", "INSERT INTO no_such_table VALUES (1);"),
            ],
        );
        let e = Migrator::new(dir.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap_err();
        assert!(matches!(e, MigrateError::ExecuteMigration(_, 4)), "{e:?}");
        assert_eq!(version(&pool).await, 2);
        let bulk: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'bulk'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(bulk, 0, "the run is all-or-nothing");

        // Fixed, it applies (another connection can take the lock).
        std::fs::remove_file(dir.path().join("4_broken.sql")).unwrap();
        write_migrations(dir.path(), &MIGRATIONS[3..]);
        let other = pool_of_one(&url).await;
        let migrator = Migrator::new(dir.path()).await.unwrap();
        migrator.run(&other).await.unwrap();
        assert_applied_once(&pool, &migrator).await;

        // An applied migration that changed is refused.
        std::fs::write(
            dir.path().join("2_email.sql"),
            "ALTER TABLE users ADD COLUMN mail TEXT;",
        )
        .unwrap();
        let e = Migrator::new(dir.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap_err();
        assert!(matches!(e, MigrateError::VersionMismatch(2)), "{e:?}");

        // Databases: created on open; dropping is refused.
        use sqlx::migrate::MigrateDatabase;
        assert!(sqlx_dqlite::Dqlite::database_exists(&url).await.unwrap());
        sqlx_dqlite::Dqlite::create_database(&url).await.unwrap();
        assert!(sqlx_dqlite::Dqlite::drop_database(&url).await.is_err());
    });
}

async fn pool_of_one(url: &str) -> DqlitePool {
    DqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(60))
        .connect(url)
        .await
        .unwrap()
}

/// A connection to the single node of `cluster` through `proxy`, whose ambiguous COMMITs are
/// checked again directly on the node (`busy_timeout` bounds that check's wait).
async fn proxied(
    cluster: &Cluster,
    proxy: &dqlite_tests::proxy::Proxy,
    db: &str,
    busy_timeout: &str,
) -> sqlx_dqlite::DqliteConnection {
    let config = dqlite_client::Config::new()
        .database(db)
        .request_timeout(Duration::from_secs(1));
    let client = dqlite_tokio::connect_with(&proxy.address().to_string(), config)
        .await
        .unwrap();
    let options = format!(
        "dqlite://{}/{db}?busy_timeout={busy_timeout}",
        cluster.db_address(0)
    );
    sqlx_dqlite::DqliteConnection::from_client(client, options.parse().unwrap())
}

fn two_migrations() -> Vec<sqlx::migrate::Migration> {
    use sqlx::migrate::{Migration, MigrationType};
    vec![
        Migration::new(
            1,
            "a".into(),
            MigrationType::Simple,
            "CREATE TABLE a (x INTEGER);".into(),
            false,
        ),
        Migration::new(
            2,
            "b".into(),
            MigrationType::Simple,
            "INSERT INTO a VALUES (1);".into(),
            false,
        ),
    ]
}

#[test]
fn an_ambiguous_commit_of_a_run_is_resolved_from_the_history() {
    use sqlx::migrate::Migrate;
    let cluster = Cluster::start(1);
    cluster.wait_ready(1);
    let proxy = dqlite_tests::proxy::Proxy::start(cluster.db_address(0));
    let migrations = two_migrations();
    runtime().block_on(async {
        // The COMMIT reaches the server, but after the client gave up waiting: unlock finds
        // the run recorded and succeeds.
        let mut conn = proxied(&cluster, &proxy, "late", "30").await;
        conn.lock().await.unwrap();
        conn.ensure_migrations_table().await.unwrap();
        for m in &migrations {
            conn.apply(m).await.unwrap();
        }
        proxy.set_latency(Duration::from_secs(3));
        conn.unlock().await.unwrap();
        proxy.set_latency(Duration::ZERO);
        let direct = pool(&format!("dqlite://{}/late", cluster.db_address(0))).await;
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&direct)
                .await
                .unwrap();
        assert_eq!(versions, [1, 2]);

        // The COMMIT never reaches the server: unlock cannot confirm the run and reports the
        // ambiguous outcome; once the old connection is gone, a rerun applies the run.
        let mut conn = proxied(&cluster, &proxy, "lost", "2").await;
        conn.lock().await.unwrap();
        conn.ensure_migrations_table().await.unwrap();
        for m in &migrations {
            conn.apply(m).await.unwrap();
        }
        proxy.black_hole(true);
        let e = conn.unlock().await.unwrap_err();
        match &e {
            MigrateError::Execute(inner) => assert!(sqlx_dqlite::is_ambiguous(inner), "{e:?}"),
            other => panic!("{other:?}"),
        }
        proxy.reset_all();
        proxy.black_hole(false);
        let direct = pool(&format!(
            "dqlite://{}/lost?busy_timeout=30",
            cluster.db_address(0)
        ))
        .await;
        let mut migrator = Migrator::DEFAULT;
        migrator.migrations = migrations.clone().into();
        migrator.run(&direct).await.unwrap();
        let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM a")
            .fetch_all(&direct)
            .await
            .unwrap();
        assert_eq!(xs, [1], "applied exactly once");
    });
}
