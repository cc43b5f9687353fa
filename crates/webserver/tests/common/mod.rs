//! The application under test: the real server on port 0, a database of its own, a
//! local identity provider and a local Stripe, driven over HTTP.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod process;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

use std::sync::{Arc, Mutex};

use api::ShutdownFlag;
use assignment::{ScaleCheck, ScalingHook};
use reqwest::Response;
use serde_json::{Value, json};
use test_support::{
    InstanceRow, STRIPE_TEST_SECRET, StripeStub, TEST_ISSUER, TempDir, TestDatabase, TestIdentity,
};
use webserver::{Application, Overrides, Settings, Stopper, Vars};

/// Sends the servers' warnings and errors to the test's captured output, so a failing
/// test shows why the server answered as it did (`RUST_LOG` widens it).
pub fn capture_server_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .with_ansi(false)
            .try_init();
    });
}

/// Records the scaling checks assignment asks for.
#[derive(Default)]
pub struct RecordedScaling(Mutex<Vec<ScaleCheck>>);

impl RecordedScaling {
    pub fn checks(&self) -> Vec<ScaleCheck> {
        self.0.lock().unwrap().clone()
    }
}

impl ScalingHook for RecordedScaling {
    fn check(&self, check: ScaleCheck) {
        self.0.lock().unwrap().push(check);
    }
}

pub struct TestApp {
    pub address: String,
    pub db: Arc<TestDatabase>,
    pub identity: Arc<TestIdentity>,
    pub stripe: StripeStub,
    pub scaling: Arc<RecordedScaling>,
    /// The hook assignments really call (the recorder, or the fleet's scaler).
    pub hook: Arc<dyn ScalingHook>,
    /// What `POST /mail` sent.
    pub outbox: Arc<mail::Outbox>,
    pub client: reqwest::Client,
    pub shutdown: ShutdownFlag,
    pub stopper: Stopper,
    _data_dir: TempDir,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the server with the test defaults overridden by `overrides`.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        let parts = (
            Arc::new(TestDatabase::new()),
            Arc::new(TestIdentity::new()),
            StripeStub::start(),
        );
        Self::start(parts, overrides).await
    }

    /// A server whose assignments drive the real fleet scaling (through the provider of
    /// its settings) instead of recording the checks.
    pub async fn spawn_scaling(overrides: &[(&str, &str)]) -> Self {
        let parts = (
            Arc::new(TestDatabase::new()),
            Arc::new(TestIdentity::new()),
            StripeStub::start(),
        );
        Self::start_with(parts, overrides, false).await
    }

    /// A second server on the same database, identity provider and Stripe: another
    /// process of the same deployment.
    pub async fn spawn_sharing(&self, overrides: &[(&str, &str)]) -> Self {
        let parts = (self.db.clone(), self.identity.clone(), self.stripe.clone());
        Self::start(parts, overrides).await
    }

    async fn start(
        parts: (Arc<TestDatabase>, Arc<TestIdentity>, StripeStub),
        overrides: &[(&str, &str)],
    ) -> Self {
        Self::start_with(parts, overrides, true).await
    }

    async fn start_with(
        (db, identity, stripe): (Arc<TestDatabase>, Arc<TestIdentity>, StripeStub),
        overrides: &[(&str, &str)],
        record_scaling: bool,
    ) -> Self {
        capture_server_logs();
        let data_dir = TempDir::new();
        let data_dir_path = data_dir.path().display().to_string();
        let mut vars: Vec<(&str, &str)> = vec![
            ("ENVIRONMENT", "testing"),
            ("DATABASE_URL", db.url()),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("JWKS_URL", identity.jwks.url()),
            ("JWT_ISSUER", TEST_ISSUER),
            ("HTTP_WORKERS", "2"),
            ("LOCAL_DATA_DIR", &data_dir_path),
            ("DATABASE_CONNECT_TIMEOUT_SECS", "2"),
            ("STRIPE_SECRET", STRIPE_TEST_SECRET),
            ("STRIPE_API_BASE", stripe.base_url()),
            // Many requests come from 127.0.0.1: tests of the limit turn it on.
            ("RATE_LIMIT_PER_MINUTE", "0"),
        ];
        vars.extend_from_slice(overrides);
        let configures_mail = vars
            .iter()
            .any(|(name, _)| matches!(*name, "SMTP_URL" | "SENDGRID_API_KEY"));
        let settings = Settings::from_vars(&vars.into_iter().collect::<Vars>()).unwrap();
        let scaling = Arc::new(RecordedScaling::default());
        let outbox = Arc::new(mail::Outbox::default());
        let overrides = Overrides {
            scaling: record_scaling.then(|| scaling.clone() as Arc<dyn ScalingHook>),
            cloud: None,
            // The outbox, unless the test configures a real transport.
            mail: (!configures_mail).then(|| outbox.clone() as Arc<dyn mail::Transport>),
        };
        let app = Application::build_with(&settings, overrides).await.unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_flag();
        let stopper = app.stopper();
        let hook = app.scaling();
        tokio::spawn(app.run_until_stopped());
        Self {
            address,
            db,
            identity,
            stripe,
            scaling,
            hook,
            outbox,
            client: reqwest::Client::new(),
            shutdown,
            stopper,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A token for `user`, whose Stripe customer has a subscription in `status`.
    pub fn token_with_subscription(&self, user: &str, status: &str) -> String {
        let customer = format!("cus_{user}");
        self.stripe.set_customer(&customer, &[status]);
        let mut claims = self.identity.claims(user);
        claims.insert(
            "https://api.fractal.co/stripe_customer_id".to_owned(),
            Value::from(customer),
        );
        self.identity.sign(&claims)
    }

    /// A token for `user`, who pays.
    pub fn paying_token(&self, user: &str) -> String {
        self.token_with_subscription(user, "active")
    }

    /// `POST /mandelbox/assign` for `user` (with a paying token) in `region`.
    pub async fn assign(&self, user: &str, region: &str, commit_hash: &str) -> Response {
        let body = assign_body(user, region, commit_hash);
        self.assign_body(&self.paying_token(user), &body).await
    }

    pub async fn assign_body(&self, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url("/mandelbox/assign"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Adds a region's image row, as an operator would.
    pub fn add_region(
        &self,
        region: &str,
        commit_hash: &str,
        ami: &str,
        active: bool,
        enabled: bool,
    ) {
        self.db.execute(&format!(
            "INSERT INTO hardware.region_to_ami
                 (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
             VALUES ('{region}', '{commit_hash}', '{ami}', {active}, {enabled})"
        ));
    }

    /// Adds an ACTIVE, heard-from instance, with `used` of its `capacity` slots taken
    /// (by other users' mandelboxes, written with plain SQL). Its IP is `ip-of-<name>`,
    /// its image `ami-<region>`.
    pub fn add_instance(
        &self,
        name: &str,
        region: &str,
        commit_hash: &str,
        capacity: i64,
        used: i64,
    ) {
        self.add_instance_in(
            name,
            region,
            commit_hash,
            capacity,
            "ACTIVE",
            1_700_000_000_000,
        );
        self.add_mandelboxes(name, used);
    }

    pub fn add_instance_in(
        &self,
        name: &str,
        region: &str,
        commit_hash: &str,
        capacity: i64,
        status: &str,
        last_updated: i64,
    ) {
        self.db.add_instance(
            &InstanceRow::new(name)
                .ami(&format!("ami-{region}"))
                .region(region)
                .status(status)
                .commit_hash(commit_hash)
                .capacity(capacity)
                .heard_at(last_updated)
                .ip(&format!("ip-of-{name}")),
        );
    }

    /// Records a launched instance (`PRE_CONNECTION`) and returns the bootstrap secret
    /// its host will register with; only its hash is stored.
    pub fn launch_instance(&self, name: &str, region: &str, commit_hash: &str) -> String {
        use secrecy::ExposeSecret;
        let (secret, hash) = auth::host::new_bootstrap_secret().unwrap();
        models::instance::insert(
            &mut self.db.connect(),
            &models::instance::NewInstance {
                instance_name: models::InstanceName::parse(name).unwrap(),
                cloud_provider_id: format!("test-{name}"),
                creation_time_utc_unix_ms: models::UnixMillis::now(),
                aws_ami_id: models::AmiId::parse(&format!("ami-{region}")).unwrap(),
                location: models::Region::parse(region).unwrap(),
                status: models::InstanceStatus::PreConnection,
                commit_hash: models::CommitHash::parse(commit_hash).unwrap(),
                aws_instance_type: "g4dn.xlarge".to_owned(),
                bootstrap_secret_hash: Some(hash),
            },
        )
        .unwrap();
        secret.expose_secret().to_owned()
    }

    /// `POST /host_service/register` with `body`.
    pub async fn register(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/host_service/register"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Launches an instance and registers its host; returns the host's credential.
    pub async fn registered_host(
        &self,
        name: &str,
        region: &str,
        commit_hash: &str,
        capacity: i64,
    ) -> String {
        let secret = self.launch_instance(name, region, commit_hash);
        let response = self.register(&registration(name, &secret, capacity)).await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        json(response).await["auth_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A request of the host holding `token`.
    pub fn as_host(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// One column of one instance, as text.
    pub fn instance_column(&self, name: &str, column: &str) -> String {
        #[derive(diesel::QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            value: Option<String>,
        }
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "SELECT {column}::text AS value FROM hardware.instance_info WHERE instance_name = '{name}'"
        ))
        .get_result::<Text>(&mut self.db.connect())
        .unwrap()
        .value
        .unwrap_or_else(|| "NULL".to_owned())
    }

    /// Puts `count` RUNNING mandelboxes of other users on `instance`, with plain SQL.
    pub fn add_mandelboxes(&self, instance: &str, count: i64) {
        if count > 0 {
            self.db.execute(&format!(
                "INSERT INTO hardware.mandelbox_info (mandelbox_id, user_id, instance_name, status)
                 SELECT gen_random_uuid()::text, 'other-' || gen_random_uuid(), '{instance}',
                        'RUNNING'
                 FROM generate_series(1, {count})"
            ));
        }
    }

    /// Mandelboxes in the database.
    pub fn mandelboxes(&self) -> i64 {
        self.db
            .number("SELECT count(*) AS n FROM hardware.mandelbox_info")
    }

    /// Mandelboxes of `user`.
    pub fn mandelboxes_of(&self, user: &str) -> i64 {
        self.db.number(&format!(
            "SELECT count(*) AS n FROM hardware.mandelbox_info WHERE user_id = '{user}'"
        ))
    }

    /// Asserts every invariant of assignment holds.
    pub fn assert_invariants(&self, per_user_limit: i64) {
        let violations =
            models::invariants::violations(&mut self.db.connect(), per_user_limit).unwrap();
        assert!(violations.is_clean(), "{violations:?}");
        let misplaced = self.db.number(
            "SELECT count(*) AS n FROM hardware.mandelbox_info m
             JOIN hardware.instance_info i USING (instance_name)
             WHERE m.status = 'ALLOCATED'
               AND (i.status <> 'ACTIVE' OR i.last_updated_utc_unix_ms = -1)",
        );
        assert_eq!(
            misplaced, 0,
            "mandelboxes assigned to unassignable instances"
        );
    }
}

/// A registration body for `name` with `secret` and `capacity`.
pub fn registration(name: &str, secret: &str, capacity: i64) -> Value {
    json!({
        "instance_name": name,
        "bootstrap_secret": secret,
        "mandelbox_capacity": capacity,
        "memory_remaining_kb": 16_000_000,
        "nanocpus_remaining": 4_000_000_000_i64,
        "gpu_vram_remaining_kb": 15_000_000,
    })
}

pub fn assign_body(user: &str, region: &str, commit_hash: &str) -> Value {
    json!({"region": region, "username": user, "dpi": 96, "client_commit_hash": commit_hash})
}

/// The JSON body of an answer, asserting that it is JSON.
pub async fn json(response: Response) -> Value {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "expected JSON, got {content_type:?}: {body}"
    );
    serde_json::from_str(&body).unwrap_or_else(|err| panic!("{err}: {body}"))
}
