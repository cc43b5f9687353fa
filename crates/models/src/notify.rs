//! PostgreSQL notifications, one listening connection per process: what any process (or
//! psql) changed reaches every process at once, through triggers of the migrations.
//!
//! - [`Channel::Capacity`] (`webserver_capacity`): capacity may have appeared (an
//!   instance inserted or becoming `ACTIVE`, a mandelbox ended);
//! - [`Channel::Regions`] (`webserver_regions`): `hardware.region_to_ami` changed;
//! - [`Channel::Hosts`] (`webserver_hosts`): a host credential was issued or changed.
//!
//! Each channel is a counter that goes up with every notification (and on every
//! reconnection, since notifications sent while the connection was down are lost):
//! watchers wait for it to change. diesel cannot wait on its socket, so a thread of its
//! own reads what arrived every [`POLL`] (a read of what is buffered, nothing sent).

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tokio::sync::watch;

/// How often the listening thread reads what arrived.
pub const POLL: Duration = Duration::from_millis(50);

/// The channels the triggers notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Capacity,
    Regions,
    Hosts,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Self::Capacity => "webserver_capacity",
            Self::Regions => "webserver_regions",
            Self::Hosts => "webserver_hosts",
        }
    }
}

/// What the listening thread has heard, per channel.
#[derive(Clone)]
pub struct Notifications {
    capacity: watch::Receiver<u64>,
    regions: watch::Receiver<u64>,
    hosts: watch::Receiver<u64>,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications")
            .field("capacity", &*self.capacity.borrow())
            .field("regions", &*self.regions.borrow())
            .field("hosts", &*self.hosts.borrow())
            .finish()
    }
}

impl Notifications {
    /// Starts the listening thread on `database_url`; it runs as long as anyone holds
    /// the returned value (or a clone of a receiver of it).
    pub fn listen(database_url: &str) -> std::io::Result<Self> {
        let (capacity_tx, capacity) = watch::channel(0);
        let (regions_tx, regions) = watch::channel(0);
        let (hosts_tx, hosts) = watch::channel(0);
        let senders = Senders {
            capacity: capacity_tx,
            regions: regions_tx,
            hosts: hosts_tx,
        };
        // A connect timeout and keepalives: a vanished server cannot hold the thread.
        let url = crate::db::connection_url(
            database_url,
            crate::db::ConnectionParams::default(),
            "webserver-listen",
        );
        std::thread::Builder::new()
            .name("pg-listen".to_owned())
            .spawn(move || listen_loop(&url, &senders))?;
        Ok(Self {
            capacity,
            regions,
            hosts,
        })
    }

    /// Notifications that never come: for parts built without a database.
    pub fn silent() -> Self {
        Self {
            capacity: watch::channel(0).1,
            regions: watch::channel(0).1,
            hosts: watch::channel(0).1,
        }
    }

    /// A receiver of `channel`'s counter.
    pub fn watch(&self, channel: Channel) -> watch::Receiver<u64> {
        match channel {
            Channel::Capacity => self.capacity.clone(),
            Channel::Regions => self.regions.clone(),
            Channel::Hosts => self.hosts.clone(),
        }
    }
}

/// The longest pause between two attempts to listen again.
const RECONNECT: Duration = Duration::from_millis(500);

/// The listening thread's ends of the channels' counters.
struct Senders {
    capacity: watch::Sender<u64>,
    regions: watch::Sender<u64>,
    hosts: watch::Sender<u64>,
}

impl Senders {
    fn all(&self) -> [(Channel, &watch::Sender<u64>); 3] {
        [
            (Channel::Capacity, &self.capacity),
            (Channel::Regions, &self.regions),
            (Channel::Hosts, &self.hosts),
        ]
    }

    fn nobody_watches(&self) -> bool {
        self.all().iter().all(|(_, sender)| sender.is_closed())
    }
}

fn bump(sender: &watch::Sender<u64>) {
    sender.send_modify(|n| *n = n.wrapping_add(1));
}

/// Listens, reconnecting with backoff (at most [`RECONNECT`] apart), until nobody
/// watches any more.
fn listen_loop(url: &str, senders: &Senders) {
    let mut pause = Duration::from_millis(100);
    while !senders.nobody_watches() {
        let mut conn = match connect(url) {
            Ok(conn) => conn,
            Err(err) => {
                tracing::debug!(error = %err, "cannot listen for notifications yet");
                std::thread::sleep(pause);
                pause = (pause * 2).min(RECONNECT);
                continue;
            }
        };
        pause = Duration::from_millis(100);
        // What was sent while nobody listened is lost: everyone looks again.
        for (_, sender) in senders.all() {
            bump(sender);
        }
        loop {
            if senders.nobody_watches() {
                return;
            }
            let mut failed = false;
            for notification in conn.notifications_iter() {
                match notification {
                    Ok(n) => {
                        if let Some((_, sender)) = senders
                            .all()
                            .into_iter()
                            .find(|(channel, _)| channel.name() == n.channel)
                        {
                            bump(sender);
                        }
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "the listening connection failed; reconnecting");
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
            std::thread::sleep(POLL);
        }
    }
}

fn connect(url: &str) -> diesel::ConnectionResult<PgConnection> {
    let mut conn = PgConnection::establish(url)?;
    conn.batch_execute(&format!(
        "LISTEN {}; LISTEN {}; LISTEN {}",
        Channel::Capacity.name(),
        Channel::Regions.name(),
        Channel::Hosts.name()
    ))
    .map_err(|err| diesel::ConnectionError::BadConnection(err.to_string()))?;
    Ok(conn)
}
