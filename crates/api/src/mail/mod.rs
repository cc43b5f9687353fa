mod send;

pub use send::{__path_send_mail, send_mail};
