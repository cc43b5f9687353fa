fn main() {
    // embed_migrations! does not notice a new migration folder by itself.
    println!("cargo:rerun-if-changed=../../migrations");
}
