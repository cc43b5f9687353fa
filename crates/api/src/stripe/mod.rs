mod customer_portal;

pub use customer_portal::{__path_create_customer_portal, create_customer_portal};
