//! Re-run the build when the state-store migrations or the embedded text change, so that
//! `sqlx::migrate!` and `include_str!` never serve a stale copy.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=prompts");
}
