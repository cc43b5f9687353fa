mod auth;

pub use auth::{__path_get_hasura_auth, get_hasura_auth};
