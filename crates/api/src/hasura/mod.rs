mod auth;

pub use auth::get_hasura_auth;
