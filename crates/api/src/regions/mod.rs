mod list;

pub use list::{__path_list_regions, list_regions};
