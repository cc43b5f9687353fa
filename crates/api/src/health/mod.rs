mod healthz;
mod readyz;

pub use healthz::get_healthz;
pub use readyz::get_readyz;
