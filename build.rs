//! Tells the integration tests (tests/api) whether to run their PostgreSQL tests, which
//! libtest can only mark ignored at compile time. Without `TEST_DATABASE_URL` they show
//! as ignored instead of counting as passed without having run. Under CI they always
//! run, so that a CI machine without PostgreSQL fails them rather than skipping them.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo::rerun-if-env-changed=CI");
    let var = |name| std::env::var(name).unwrap_or_default();
    let database_configured = !var("TEST_DATABASE_URL").is_empty();
    let ci = !matches!(var("CI").as_str(), "" | "0" | "false");
    if database_configured || ci {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
