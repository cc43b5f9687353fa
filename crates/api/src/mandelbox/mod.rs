mod assign;

pub use assign::assign_mandelbox;
