//! The pools through the deaths of their connections: a server restart,
//! `pg_terminate_backend`, and readiness while the database is away and back.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use models::db::Readiness;
use models::{Db, DbError, PoolOptions, migrations, region_to_ami};
use test_support::{OwnPostgres, TestDatabase};

/// A migrated database on a PostgreSQL of its own.
fn own_database(postgres: &OwnPostgres, name: &str) -> String {
    use diesel::Connection;
    let url = postgres.create_database(name);
    let mut conn = diesel::PgConnection::establish(&url).unwrap();
    migrations::run_pending(&mut conn).unwrap();
    url
}

fn options() -> PoolOptions {
    PoolOptions {
        max_size: 8,
        connection_timeout: Duration::from_secs(2),
        ..PoolOptions::default()
    }
}

/// Fills the pool: `n` calls at once, each holding its connection a moment.
async fn use_connections(db: &Db, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.run(|conn| {
                    use diesel::connection::SimpleConnection;
                    conn.batch_execute("SELECT pg_sleep(0.3)")?;
                    Ok(())
                })
                .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

/// Sequential single queries that load rows, outside any transaction, each the first
/// use of that query on its connection (prepared there, then cached): how many failed.
/// diesel's own pool manager kept a connection whose server was gone if the first
/// statement to fail on it was one being prepared: such a connection looked healthy, was
/// handed out again and again, and every prepared query on it failed, forever.
async fn failures_of(db: &Db, calls: usize) -> usize {
    let mut failed = 0;
    for _ in 0..calls {
        let loaded = db
            .run(|conn| Ok(region_to_ami::enabled_regions(conn)?))
            .await;
        match loaded.map(|_| ()) {
            Ok(()) => {}
            Err(DbError::Unavailable(_)) => failed += 1,
            Err(other) => panic!("not an outage: {other}"),
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_by_the_server_are_never_handed_out_twice() {
    let database = TestDatabase::new();
    let db = Db::new(database.url(), options());
    use_connections(&db, 8).await;
    let killed = database.number(&format!(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        database.name()
    ));
    assert!(killed >= 6, "killed {killed}");

    // The first call finds its connection dead; every other is checked before use.
    let failed = failures_of(&db, 40).await;
    assert!(failed <= 1, "{failed} of 40 calls failed after the kill");
    assert!(db.dead_connections() >= 1);
    use_connections(&db, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_served_again_at_once() {
    let postgres = OwnPostgres::start();
    let url = own_database(&postgres, "recovery");
    let db = Db::new(&url, options());
    use_connections(&db, 8).await;
    postgres.restart();
    let answering = Instant::now();
    let failed = failures_of(&db, 40).await;
    assert!(failed <= 1, "{failed} of 40 calls failed after the restart");
    assert!(answering.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_kept_warm_reconnects_before_anyone_asks() {
    let postgres = OwnPostgres::start();
    let url = own_database(&postgres, "warm");
    let db = Db::new(&url, options());
    use_connections(&db, 4).await;
    let warm = tokio::spawn(db.clone().keep_warm(Duration::from_millis(200)));
    postgres.restart();
    let answering = Instant::now();
    let connected = |name: &str| {
        postgres.number(&format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '{name}'"
        ))
    };
    while connected("webserver-requests") == 0 || connected("webserver-requests-locks") == 0 {
        assert!(
            answering.elapsed() < Duration::from_secs(2),
            "the pools did not reconnect within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nobody asked, and still no caller meets a dead connection.
    assert_eq!(failures_of(&db, 20).await, 0);
    warm.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_down_and_back() {
    let postgres = OwnPostgres::start();
    let url = own_database(&postgres, "ready");
    let db = Db::new(&url, options());
    let readiness = Arc::new(Readiness::new(db.clone()));
    readiness.check().await.unwrap();

    postgres.stop();
    let stopped = Instant::now();
    let until_not_ready = loop {
        if let Err(why) = readiness.check().await {
            assert!(why.reason().contains("request pool"), "{}", why.reason());
            break stopped.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        until_not_ready < Duration::from_secs(2),
        "{until_not_ready:?}"
    );

    postgres.resume();
    let answering = Instant::now();
    while readiness.check().await.is_err() {
        assert!(
            answering.elapsed() < Duration::from_secs(2),
            "not ready again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_readiness_probes_costs_a_few_queries() {
    let database = TestDatabase::new();
    let db = Db::new(database.url(), options());
    let readiness = Arc::new(Readiness::new(db.clone()));
    let before = database.number(&format!(
        "SELECT xact_commit AS n FROM pg_stat_database WHERE datname = '{}'",
        database.name()
    ));
    let started = Instant::now();
    let probes: Vec<_> = (0..2_000)
        .map(|_| {
            let readiness = readiness.clone();
            tokio::spawn(async move { readiness.check().await.is_ok() })
        })
        .collect();
    for probe in probes {
        assert!(probe.await.unwrap());
    }
    let elapsed = started.elapsed();
    // Statistics reach pg_stat_database within a moment.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = database.number(&format!(
        "SELECT xact_commit AS n FROM pg_stat_database WHERE datname = '{}'",
        database.name()
    ));
    // Two pools, a probe each per quarter second, and the statistics reads themselves.
    let allowed = 2 * (elapsed.as_millis() / 250 + 1) as i64 + 10;
    assert!(
        after - before <= allowed,
        "{} transactions for 2,000 probes in {elapsed:?}",
        after - before
    );
}
