//! The sessions a simulated host holds for its clients. A client that was assigned a
//! mandelbox on this host connects with `POST /mandelbox/{id}/session` `{"secs": …}`;
//! the host reports it `CONNECTING` then `RUNNING` through the host protocol, keeps it
//! for that long, and reports its end (`DELETE /host_service/mandelbox/{id}`), as a real
//! host does. A drained host shuts down only after its last session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use domain::MandelboxId;
use host_agent::{AgentError, HostAgent, MandelboxState};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

/// The longest session a client may ask for.
const LONGEST: Duration = Duration::from_secs(7 * 24 * 3600);

/// One host's sessions.
pub(crate) struct Sessions {
    /// The registered agent, once registration succeeded.
    agent: OnceLock<Arc<HostAgent>>,
    live: watch::Sender<usize>,
    /// Asked to drain: it shuts down after its last session (a client assigned just
    /// before the drain may still connect).
    draining: AtomicBool,
}

impl Sessions {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            agent: OnceLock::new(),
            live: watch::channel(0).0,
            draining: AtomicBool::new(false),
        })
    }

    pub(crate) fn registered(&self, agent: Arc<HostAgent>) {
        let _ = self.agent.set(agent);
    }

    /// Whether the host registered (and so may hold sessions).
    pub(crate) fn is_registered(&self) -> bool {
        self.agent.get().is_some()
    }

    pub(crate) fn mark_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Sessions held now.
    pub(crate) fn live(&self) -> usize {
        *self.live.borrow()
    }

    /// Completes once no session is left.
    pub(crate) async fn ended(&self) {
        let mut live = self.live.subscribe();
        let _ = live.wait_for(|n| *n == 0).await;
    }

    /// The route clients connect through.
    pub(crate) fn routes(
        self: &Arc<Self>,
    ) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
        let sessions = web::Data::from(self.clone());
        move |config: &mut web::ServiceConfig| {
            config
                .app_data(sessions.clone())
                .route("/mandelbox/{id}/session", web::post().to(connect));
        }
    }
}

#[derive(Deserialize)]
struct Connect {
    secs: f64,
}

fn refused(status: u16, error: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
    )
    .json(json!({ "error": error }))
}

async fn connect(
    sessions: web::Data<Sessions>,
    id: web::Path<String>,
    body: web::Json<Connect>,
) -> HttpResponse {
    let Ok(id) = MandelboxId::parse(&id) else {
        return refused(400, "not a mandelbox id");
    };
    let Some(length) = Duration::try_from_secs_f64(body.secs)
        .ok()
        .filter(|length| *length <= LONGEST)
    else {
        return refused(400, "secs must be a number of seconds from 0 to a week");
    };
    let Some(agent) = sessions.agent.get().cloned() else {
        return refused(503, "this host has not registered yet");
    };
    for state in [MandelboxState::Connecting, MandelboxState::Running] {
        match agent.set_mandelbox_status(&id, state).await {
            Ok(()) => {}
            Err(AgentError::Refused { status, error }) => return refused(status, &error),
            Err(err) => return refused(502, &err.to_string()),
        }
    }
    sessions.live.send_modify(|n| *n += 1);
    let sessions = sessions.into_inner();
    tokio::spawn(async move {
        tokio::time::sleep(length).await;
        if let Err(err) = agent.remove_mandelbox(&id).await {
            tracing::warn!(mandelbox = %id, error = %err, "could not report a session's end");
        }
        sessions.live.send_modify(|n| *n = n.saturating_sub(1));
    });
    HttpResponse::Ok().json(json!({ "running": true }))
}
