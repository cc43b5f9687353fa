use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::Text;

/// The server the tests use, as a URL for a role that may create databases (on the
/// `postgres` database). `scripts/test.sh` sets `TEST_DATABASE_URL`.
///
/// Tests talk to a local server without TLS: libpq's OpenSSL gains nothing on loopback,
/// and its clean-up at process exit can race with pool threads still closing
/// connections (seen as a SIGSEGV in libcrypto).
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        "postgres://webserver:webserver@127.0.0.1:5432/postgres?sslmode=disable".to_owned()
    })
}

/// `url` naming database `name` instead, its query string (`?sslmode=…`) kept.
fn with_database(url: &str, name: &str) -> String {
    let (path, query) = url
        .split_once('?')
        .map_or((url, None), |(p, q)| (p, Some(q)));
    let base = path.rsplit_once('/').map_or(path, |(base, _)| base);
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn swapping_the_database_keeps_the_query() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres", "t2"),
            "postgres://u@h/t2"
        );
    }
}

/// A fleet to seed with [`TestDatabase::seed_fleet`].
#[derive(Debug, Clone)]
pub struct Fleet<'a> {
    pub region: &'a str,
    pub commit_hash: &'a str,
    /// Instance names are `<prefix>-<n>`; the image is `ami-<prefix>`.
    pub prefix: &'a str,
    pub instances: u32,
    pub capacity: i64,
    pub mandelboxes_each: i64,
}

/// Serialises template creation across test processes.
const TEMPLATE_LOCK: i64 = 0x7765_6273_7276_0001;

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// A database of its own for one test, created from the migrated template and dropped
/// (with any connection still open to it) when this value is dropped.
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    pub fn new() -> Self {
        let admin_url = admin_url();
        let template = ensure_template(&admin_url);
        let name = format!("webserver_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect(&admin_url);
        sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut admin)
            .expect("create the test database from the template");
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// An empty database with no migrations applied.
    pub fn empty() -> Self {
        let admin_url = admin_url();
        let name = format!("webserver_test_{}", uuid::Uuid::new_v4().simple());
        sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut connect(&admin_url))
            .expect("create an empty test database");
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn connect(&self) -> PgConnection {
        connect(&self.url)
    }

    /// Runs SQL statements (as older tools writing to the database directly would).
    pub fn execute(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        self.connect()
            .batch_execute(sql)
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// Inserts an instance row (see [`crate::InstanceRow`]).
    pub fn add_instance(&self, row: &crate::InstanceRow) {
        self.execute(&row.sql());
    }

    /// The single number a query answers, as a column named `n`:
    /// `SELECT count(*) AS n FROM …`.
    pub fn number(&self, sql: &str) -> i64 {
        number(&mut self.connect(), sql)
    }

    /// Seeds `fleet`: its region with an active image serving its commit hash, its
    /// instances (`ACTIVE`, heard from, named `<prefix>-<n>`, IP `10.x.y.z`), and
    /// running mandelboxes of other users on each.
    pub fn seed_fleet(&self, fleet: &Fleet<'_>) {
        let Fleet {
            region,
            commit_hash,
            prefix,
            instances,
            capacity,
            mandelboxes_each,
        } = fleet;
        self.execute(&format!(
            "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
             VALUES ('{region}', '{commit_hash}', 'ami-{prefix}', true);
             INSERT INTO hardware.instance_info
                 (instance_name, cloud_provider_id, aws_ami_id, location, status, commit_hash,
                  aws_instance_type, mandelbox_capacity, last_updated_utc_unix_ms, ip)
             SELECT '{prefix}-' || n, 'aws-{prefix}-' || n, 'ami-{prefix}', '{region}', 'ACTIVE',
                    '{commit_hash}', 'g4dn.xlarge', {capacity}, 1700000000000,
                    '10.' || (n / 65536) || '.' || (n / 256 % 256) || '.' || (n % 256)
             FROM generate_series(1, {instances}) AS n;
             INSERT INTO hardware.mandelbox_info (mandelbox_id, user_id, instance_name, status)
             SELECT gen_random_uuid()::text, 'seed-' || n || '-' || k, '{prefix}-' || n, 'RUNNING'
             FROM generate_series(1, {instances}) AS n, generate_series(1, {mandelboxes_each}) AS k;"
        ));
    }

    /// Drops the database now, ending every connection to it.
    pub fn drop_now(&self) {
        sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut connect(&self.admin_url))
        .expect("drop the test database");
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

/// The single number a query answers on `conn`, as a column named `n`.
pub fn number(conn: &mut PgConnection, sql: &str) -> i64 {
    try_number(conn, sql).unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// [`number`], or the error.
pub fn try_number(conn: &mut PgConnection, sql: &str) -> diesel::QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Number {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    sql_query(sql).get_result::<Number>(conn).map(|row| row.n)
}

fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|err| {
        panic!(
            "cannot connect to the test PostgreSQL server ({err}); \
             run the tests with scripts/test.sh, or set TEST_DATABASE_URL"
        )
    })
}

/// The migrated template database for the current migrations, created once for every
/// test process. It is migrated under a temporary name and renamed when complete, so a
/// process that dies half-way leaves no half-migrated template behind.
fn ensure_template(admin_url: &str) -> String {
    let template = format!("webserver_test_template_{}", env!("MIGRATIONS_FINGERPRINT"));
    let mut admin = connect(admin_url);
    sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(TEMPLATE_LOCK)
        .execute(&mut admin)
        .expect("take the template lock");
    let exists = sql_query("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(&template)
        .get_result::<Exists>(&mut admin)
        .expect("look for the template database")
        .exists;
    if !exists {
        let staging = format!("{template}_partial");
        sql_query(format!("DROP DATABASE IF EXISTS {staging} WITH (FORCE)"))
            .execute(&mut admin)
            .expect("drop a leftover partial template");
        sql_query(format!("CREATE DATABASE {staging}"))
            .execute(&mut admin)
            .expect("create the template database");
        {
            let mut conn = connect(&with_database(admin_url, &staging));
            models::migrations::run_pending(&mut conn).expect("migrate the template database");
        }
        sql_query(format!("ALTER DATABASE {staging} RENAME TO {template}"))
            .execute(&mut admin)
            .expect("publish the template database");
    }
    sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(TEMPLATE_LOCK)
        .execute(&mut admin)
        .expect("release the template lock");
    template
}
