mod healthz;
mod readyz;

pub use healthz::{__path_get_healthz, get_healthz};
pub use readyz::{__path_get_readyz, get_readyz};
