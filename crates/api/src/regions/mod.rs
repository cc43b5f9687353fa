mod list;

pub use list::list_regions;
