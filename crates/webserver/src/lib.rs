//! The `webserver` binary's library: settings, telemetry, the command line and the
//! application's startup. `main.rs` only parses the command line and calls in here.

pub mod cli;
pub mod cloud;
pub mod settings;
pub mod startup;
pub mod telemetry;

pub use settings::{Settings, Vars};
pub use startup::{Application, Overrides, ShutdownSignals, StartupError, Stopper};
