mod assign;

pub use assign::{__path_assign_mandelbox, assign_mandelbox};
