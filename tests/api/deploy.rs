//! The deployment files (`Dockerfile`, `docker-compose.yml`, `.env.example`,
//! `.dockerignore`) are wired to each other and to what tollgate actually reads.
//! Static checks only: no Docker engine and no server are needed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// Every environment variable tollgate reads (README, "Configuration").
const APP_VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_CONNECT_TIMEOUT_SECS",
    "BIND_ADDR",
    "PUBLIC_URL",
    "JWT_ALGORITHM",
    "JWT_SECRET",
    "JWT_KEYS_DIR",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY_SECS",
    "ACCESS_TOKEN_TTL_SECS",
    "REFRESH_TOKEN_TTL_SECS",
    "REFRESH_REUSE_GRACE_SECS",
    "SESSIONS_PER_USER",
    "ADMIN_REQUIRE_MFA",
    "WEBAUTHN_RP_ID",
    "WEBAUTHN_ORIGINS",
    "SMTP_URL",
    "MAIL_FROM",
    "APP_NAME",
    "MAIL_COOLDOWN_SECS",
    "PASSWORD_RESET_TTL_SECS",
    "PASSWORD_RESET_URL",
    "EMAIL_VERIFICATION",
    "EMAIL_VERIFY_TTL_SECS",
    "EMAIL_VERIFY_URL",
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "ARGON2_MAX_CONCURRENT",
    "ARGON2_QUEUE_TIMEOUT_MS",
    "AUTH_RATE_LIMIT_PER_MIN",
    "SHARED_ABUSE_LIMITS",
    "TRUST_PROXY_HEADERS",
    "TRUSTED_PROXIES",
    "PROXY_HEADER",
    "CORS_ALLOWED_ORIGINS",
    "HTTP_CLIENT_TIMEOUT_SECS",
    "JWKS_MAX_AGE_SECS",
    "JWT_KEY_PUBLISH_AHEAD_SECS",
    "REVOCATION_FEED_TOKEN",
    "DEFAULT_ROLES",
    "REFRESH_TOKEN_COOKIE",
    "DEMO_UI",
    "DEMO_UI_DIR",
    "METRICS_BIND_ADDR",
    "SHUTDOWN_TIMEOUT_SECS",
    "LOG_FORMAT",
    "RUST_LOG",
];

/// Read by docker-compose.yml (the `db` service), not by tollgate.
const COMPOSE_VARIABLES: &[&str] = &["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"];

/// Set for the container by docker-compose.yml whatever `.env` says, since a `.env` written
/// for `cargo run` on the host names host paths and addresses; .env.example says so.
const CONTAINER_VARIABLES: &[&str] = &["DATABASE_URL", "BIND_ADDR", "JWT_KEYS_DIR"];

/// Words that mark a value as an obvious placeholder rather than a real credential.
const PLACEHOLDER_MARKERS: &[&str] = &["dev", "example", "change"];

const CONTAINER_PORT: u16 = 8080;

// ---------------------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------------------

#[test]
fn compose_declares_the_db_and_tollgate_services() {
    let compose = compose();
    let services = compose["services"].as_hash().expect("docker-compose.yml has a `services` mapping");
    for name in ["db", "tollgate"] {
        assert!(
            services.contains_key(&Yaml::String(name.into())),
            "docker-compose.yml has no `{name}` service"
        );
    }
    let db_image = compose["services"]["db"]["image"].as_str().unwrap_or("");
    assert!(
        db_image.starts_with("postgres:"),
        "the db service runs a pinned postgres image, not {db_image:?}"
    );
    assert!(
        !compose["services"]["tollgate"]["build"].is_badvalue(),
        "the tollgate service is built from this repository's Dockerfile"
    );
}

#[test]
fn db_has_a_pg_isready_healthcheck_for_its_own_user_and_database() {
    let compose = compose();
    let db = &compose["services"]["db"];
    let test = healthcheck_command(db).expect("the db service has a healthcheck");
    assert!(test.contains("pg_isready"), "db healthcheck {test:?} does not use pg_isready");

    // `$$X` in compose is `$X` for the container's shell, which expands it from the
    // service's own environment.
    let env = environment(db);
    let resolved = expand_shell(&interpolate(&test, &HashMap::new()), |name| {
        env.get(name).map(|raw| interpolate(raw, &HashMap::new()))
    });
    let tokens: Vec<String> =
        resolved.split_whitespace().map(|t| t.trim_matches(|c| c == '"' || c == '\'').to_owned()).collect();
    let arg = |flag: &str| tokens.iter().position(|t| t == flag).and_then(|i| tokens.get(i + 1)).cloned();
    let settings = postgres_settings(&compose, &HashMap::new());
    assert_eq!(arg("-U"), Some(settings.user), "pg_isready -U in {test:?}");
    assert_eq!(arg("-d"), Some(settings.database), "pg_isready -d in {test:?}");
}

#[test]
fn db_keeps_its_data_on_a_declared_named_volume() {
    let compose = compose();
    let declared = declared_volumes(&compose);
    let mounts = mounts(&compose["services"]["db"]);
    let data = mounts
        .iter()
        .find(|m| m.target.starts_with("/var/lib/postgresql"))
        .unwrap_or_else(|| panic!("db mounts nothing on /var/lib/postgresql: {mounts:?}"));
    assert!(
        declared.contains(&data.source),
        "db data volume {:?} is not a named volume declared under top-level `volumes` {declared:?}",
        data.source
    );
}

#[test]
fn tollgate_starts_only_once_db_is_healthy() {
    let compose = compose();
    let depends_on = &compose["services"]["tollgate"]["depends_on"];
    assert_eq!(
        depends_on["db"]["condition"].as_str(),
        Some("service_healthy"),
        "tollgate must depend on db with `condition: service_healthy`, found {depends_on:?}"
    );
}

#[test]
fn tollgate_publishes_container_port_8080() {
    let compose = compose();
    let ports = published_container_ports(&compose["services"]["tollgate"]);
    assert!(
        ports.contains(&CONTAINER_PORT),
        "tollgate publishes container ports {ports:?}, not {CONTAINER_PORT}"
    );
}

#[test]
fn tollgate_database_url_is_the_compose_postgres() {
    let compose = compose();
    let raw = environment(&compose["services"]["tollgate"])
        .remove("DATABASE_URL")
        .expect("tollgate sets DATABASE_URL");
    // Both without a .env file and after `cp .env.example .env`.
    for (scenario, vars) in
        [("without .env", HashMap::new()), ("with .env.example as .env", env_example_values())]
    {
        let url = interpolate(&raw, &vars);
        let parsed = parse_postgres_url(&url)
            .unwrap_or_else(|| panic!("{scenario}: DATABASE_URL {url:?} is not postgres://"));
        let db = postgres_settings(&compose, &vars);
        assert_eq!(parsed.host, "db", "{scenario}: DATABASE_URL host in {url:?}");
        assert!(
            parsed.port.is_none() || parsed.port == Some(5432),
            "{scenario}: DATABASE_URL port in {url:?}"
        );
        assert_eq!(parsed.user, db.user, "{scenario}: DATABASE_URL user vs POSTGRES_USER");
        assert_eq!(parsed.password, db.password, "{scenario}: DATABASE_URL password vs POSTGRES_PASSWORD");
        assert_eq!(parsed.database, db.database, "{scenario}: DATABASE_URL database vs POSTGRES_DB");
    }
}

#[test]
fn tollgate_listens_on_all_interfaces_on_the_published_port() {
    let compose = compose();
    let env = environment(&compose["services"]["tollgate"]);
    // Compose may leave it to the image's ENV.
    let bind = env
        .get("BIND_ADDR")
        .map(|raw| interpolate(raw, &HashMap::new()))
        .or_else(|| dockerfile_env().remove("BIND_ADDR"))
        .expect("BIND_ADDR is set by docker-compose.yml or the Dockerfile");
    let (host, port) = bind.rsplit_once(':').expect("BIND_ADDR is host:port");
    assert!(
        host == "0.0.0.0" || host == "[::]",
        "BIND_ADDR {bind:?} is not reachable from outside the container"
    );
    assert_eq!(port, CONTAINER_PORT.to_string(), "BIND_ADDR port vs published port");
}

#[test]
fn tollgate_keeps_its_signing_keys_on_a_declared_named_volume() {
    let compose = compose();
    let tollgate = &compose["services"]["tollgate"];
    let keys_dir = environment(tollgate)
        .get("JWT_KEYS_DIR")
        .map(|raw| interpolate(raw, &HashMap::new()))
        .or_else(|| dockerfile_env().remove("JWT_KEYS_DIR"))
        .expect("JWT_KEYS_DIR is set by docker-compose.yml or the Dockerfile");
    assert!(keys_dir.starts_with('/'), "JWT_KEYS_DIR {keys_dir:?} should be absolute in the container");
    let declared = declared_volumes(&compose);
    let mounts = mounts(tollgate);
    let mount = mounts
        .iter()
        .find(|m| Path::new(&keys_dir).starts_with(&m.target))
        .unwrap_or_else(|| panic!("JWT_KEYS_DIR {keys_dir:?} is on no volume: {mounts:?}"));
    assert!(
        declared.contains(&mount.source),
        "the keys volume {:?} is not declared under top-level `volumes` {declared:?}",
        mount.source
    );
}

#[test]
fn tollgate_has_an_http_healthcheck() {
    let compose = compose();
    let tollgate = &compose["services"]["tollgate"];
    let test = healthcheck_command(tollgate).expect("the tollgate service has a healthcheck");
    assert!(
        test.contains("/readyz") || test.contains("/healthz"),
        "tollgate healthcheck {test:?} hits neither /readyz nor /healthz"
    );
    assert!(
        test.contains(&format!(":{CONTAINER_PORT}/")),
        "tollgate healthcheck {test:?} does not use the container port"
    );
}

#[test]
fn compose_passes_tollgate_only_variables_it_reads() {
    let compose = compose();
    let env = environment(&compose["services"]["tollgate"]);
    let unknown: Vec<&String> = env.keys().filter(|name| !APP_VARIABLES.contains(&name.as_str())).collect();
    assert!(unknown.is_empty(), "tollgate does not read {unknown:?}");
}

#[test]
fn every_variable_set_in_dot_env_reaches_the_tollgate_process() {
    let compose = compose();
    let tollgate = &compose["services"]["tollgate"];
    // A `.env` that gives every variable tollgate reads a value of its own.
    let dot_env: HashMap<String, String> =
        APP_VARIABLES.iter().map(|name| (name.to_string(), format!("from-dot-env-{name}"))).collect();
    let process = container_environment(tollgate, &dot_env);
    for name in APP_VARIABLES {
        let value = process.get(*name);
        if CONTAINER_VARIABLES.contains(name) {
            assert!(value.is_some_and(|v| !v.is_empty()), "docker-compose.yml gives tollgate no {name}");
        } else {
            assert_eq!(
                value,
                dot_env.get(*name),
                "{name} set in .env does not reach tollgate unchanged under docker compose"
            );
        }
    }
}

#[test]
fn dot_env_is_optional_and_its_overrides_are_documented() {
    let compose = compose();
    let files = env_files(&compose["services"]["tollgate"]);
    let dot_env = files.iter().find(|f| f.path == ".env");
    assert!(dot_env.is_some(), "the tollgate service does not read .env through env_file: {files:?}");
    assert!(
        dot_env.is_some_and(|f| !f.required),
        "`cp .env.example .env` is optional, so env_file .env needs `required: false`"
    );
    let text = read(".env.example").replace("\n#", " ");
    let sentence = text
        .split(". ")
        .find(|s| s.contains("set by docker-compose.yml"))
        .expect(".env.example says which variables docker-compose.yml sets itself");
    for name in CONTAINER_VARIABLES {
        assert!(sentence.contains(name), ".env.example does not say that docker-compose.yml sets {name}");
    }
}

#[test]
fn compose_contains_no_real_secrets() {
    let compose = compose();
    let services = compose["services"].as_hash().expect("services mapping");
    let mut checked = 0;
    for (name, service) in services {
        for (key, raw) in environment(service) {
            let context = format!("docker-compose.yml {name:?} {key}");
            if is_secret_name(&key) {
                checked += 1;
                assert_safe_reference(&raw, &context);
            }
            if let Some(password) = raw_url_password(&raw) {
                checked += 1;
                assert_safe_reference(&password, &format!("{context} (URL password)"));
            }
            assert_not_key_material(&raw, &context);
        }
    }
    // POSTGRES_PASSWORD, JWT_SECRET, and the password inside DATABASE_URL at least.
    assert!(checked >= 3, "expected to check at least 3 secret values, checked {checked}");
}

// ---------------------------------------------------------------------------------------
// .env.example
// ---------------------------------------------------------------------------------------

#[test]
fn env_example_names_only_variables_tollgate_or_compose_read() {
    let names: BTreeSet<String> = env_example().into_iter().map(|a| a.name).collect();
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !APP_VARIABLES.contains(&n.as_str()) && !COMPOSE_VARIABLES.contains(&n.as_str()))
        .collect();
    assert!(unknown.is_empty(), ".env.example names variables nothing reads: {unknown:?}");
}

#[test]
fn env_example_documents_every_variable() {
    let names: BTreeSet<String> = env_example().into_iter().map(|a| a.name).collect();
    let missing: Vec<&&str> =
        APP_VARIABLES.iter().chain(COMPOSE_VARIABLES).filter(|n| !names.contains(**n)).collect();
    assert!(missing.is_empty(), ".env.example does not mention {missing:?}");
}

#[test]
fn env_example_leaves_tollgate_on_its_defaults() {
    // `.env` is also read by tollgate itself: an active DATABASE_URL pointing at the
    // compose host `db` would break `cargo run` on the host.
    let active: Vec<String> = env_example()
        .into_iter()
        .filter(|a| a.active && APP_VARIABLES.contains(&a.name.as_str()))
        .map(|a| a.name)
        .collect();
    assert!(
        active.is_empty(),
        ".env.example should keep tollgate's own settings commented out, but sets {active:?}"
    );
}

#[test]
fn env_example_contains_no_real_secrets() {
    let mut checked = 0;
    for assignment in env_example() {
        let context = format!(".env.example {}", assignment.name);
        if is_secret_name(&assignment.name) {
            checked += 1;
            assert_safe_literal(&assignment.value, &context);
        }
        if let Some(password) = raw_url_password(&assignment.value) {
            checked += 1;
            assert_safe_literal(&password, &format!("{context} (URL password)"));
        }
        assert_not_key_material(&assignment.value, &context);
    }
    // POSTGRES_PASSWORD and JWT_SECRET at least.
    assert!(checked >= 2, "expected to check at least 2 secret values, checked {checked}");
}

#[test]
fn the_variable_list_matches_the_source() {
    // Guards APP_VARIABLES itself against drifting from what the code reads.
    let mut source = String::new();
    collect_rust_sources(&root().join("src"), &mut source);
    for name in APP_VARIABLES.iter().filter(|n| **n != "RUST_LOG") {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "src/ no longer reads {name}; update the deployment files and this list"
        );
    }
    // And the other way: every variable config.rs reads is listed (so documented).
    let config = std::fs::read_to_string(root().join("src/config.rs")).unwrap();
    for literal in config.split('"').skip(1).step_by(2) {
        let is_variable = literal.contains('_')
            && literal.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        assert!(
            !is_variable || APP_VARIABLES.contains(&literal),
            "src/config.rs reads {literal}, which the deployment files do not know"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile and .dockerignore
// ---------------------------------------------------------------------------------------

#[test]
fn dockerfile_builds_in_one_stage_and_runs_in_another() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "the Dockerfile has {} FROM stage(s)", stages.len());
    let build_stage = &stages[0];
    let builds: Vec<&Instruction> =
        build_stage.iter().filter(|i| i.keyword == "RUN" && i.args.contains("cargo build")).collect();
    assert!(!builds.is_empty(), "the build stage does not run cargo build");
    for build in builds {
        assert!(
            build.args.contains("cargo build --release --locked"),
            "every build should be `cargo build --release --locked`: {:?}",
            build.args
        );
    }
    let runtime = stages.last().unwrap();
    assert!(
        runtime
            .iter()
            .any(|i| i.keyword == "COPY" && i.args.contains("--from=") && i.args.contains("tollgate")),
        "the runtime stage does not copy the tollgate binary from the build stage"
    );
    assert!(
        !runtime.iter().any(|i| i.keyword == "RUN" && i.args.contains("cargo ")),
        "the runtime stage should not run cargo"
    );
}

#[test]
fn dockerfile_copies_the_embedded_migrations_before_the_real_build() {
    let stages = dockerfile_stages();
    let build_stage = &stages[0];
    let position = |pred: &dyn Fn(&Instruction) -> bool| build_stage.iter().position(pred);
    let migrations = position(&|i| i.keyword == "COPY" && i.args.contains("migrations"))
        .expect("the build stage copies migrations/ (embedded by embed_migrations!)");
    let sources = position(&|i| {
        i.keyword == "COPY" && i.args.split_whitespace().any(|a| a.trim_end_matches('/') == "src")
    })
    .expect("the build stage copies src/");
    let last_build = build_stage
        .iter()
        .rposition(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the build stage runs cargo build");
    assert!(
        migrations < last_build && sources < last_build,
        "migrations/ and src/ must be copied before the final cargo build"
    );
}

#[test]
fn dockerfile_runs_as_a_non_root_user() {
    let stages = dockerfile_stages();
    let user = stages
        .last()
        .unwrap()
        .iter()
        .rfind(|i| i.keyword == "USER")
        .map(|i| i.args.trim().to_owned())
        .expect("the runtime stage sets USER");
    let name = user.split(':').next().unwrap_or("");
    assert!(!name.is_empty() && name != "root" && name != "0", "the runtime stage runs as {user:?}");
}

#[test]
fn dockerfile_has_a_healthcheck_and_exposes_8080() {
    let stages = dockerfile_stages();
    let runtime = stages.last().unwrap();
    let healthcheck = runtime
        .iter()
        .rfind(|i| i.keyword == "HEALTHCHECK")
        .map(|i| i.args.clone())
        .expect("the runtime stage has a HEALTHCHECK");
    assert!(
        healthcheck.contains("CMD") && healthcheck.contains("/healthz"),
        "HEALTHCHECK {healthcheck:?} does not check /healthz"
    );
    let exposed: Vec<&str> =
        runtime.iter().filter(|i| i.keyword == "EXPOSE").flat_map(|i| i.args.split_whitespace()).collect();
    assert!(
        exposed.iter().any(|p| p.trim_end_matches("/tcp") == CONTAINER_PORT.to_string()),
        "EXPOSE {exposed:?} does not include {CONTAINER_PORT}"
    );
    let entrypoint = runtime
        .iter()
        .rfind(|i| i.keyword == "ENTRYPOINT")
        .map(|i| i.args.clone())
        .expect("the runtime stage has an ENTRYPOINT");
    assert!(entrypoint.contains("tollgate"), "ENTRYPOINT {entrypoint:?}");
}

#[test]
fn dockerfile_defaults_suit_a_container() {
    let env = dockerfile_env();
    assert_eq!(env.get("BIND_ADDR").map(String::as_str), Some("0.0.0.0:8080"));
    let keys_dir = env.get("JWT_KEYS_DIR").expect("ENV JWT_KEYS_DIR");
    assert!(keys_dir.starts_with("/data/"), "JWT_KEYS_DIR {keys_dir:?} is outside /data");
    let database_url = env.get("DATABASE_URL").expect("ENV DATABASE_URL");
    assert!(
        database_url.starts_with("sqlite:///data/"),
        "DATABASE_URL {database_url:?} is not a SQLite file under /data"
    );
    for name in env.keys() {
        assert!(
            APP_VARIABLES.contains(&name.as_str()),
            "the Dockerfile sets {name}, which tollgate does not read"
        );
    }
}

#[test]
fn dockerignore_keeps_build_output_and_secrets_out_of_the_context() {
    let text = read(".dockerignore");
    let patterns: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for needed in ["target", "data", ".git", ".env"] {
        assert!(patterns.contains(needed), ".dockerignore does not exclude {needed}");
    }
    // The workspace member and the bench target are part of the cargo context too;
    // scripts/check-docker-context.py replays the build stages to prove the rest.
    for needed in ["src", "migrations", "Cargo.toml", "Cargo.lock", "crates", "benches"] {
        assert!(!patterns.contains(needed), ".dockerignore excludes {needed}, which the build needs");
    }
}

// ---------------------------------------------------------------------------------------
// Helpers: files
// ---------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> String {
    let path = root().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn collect_rust_sources(dir: &Path, out: &mut String) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&fs::read_to_string(&path).unwrap());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers: compose
// ---------------------------------------------------------------------------------------

fn compose() -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read("docker-compose.yml"))
        .unwrap_or_else(|e| panic!("docker-compose.yml is not valid YAML: {e}"));
    assert_eq!(docs.len(), 1, "docker-compose.yml holds one YAML document");
    docs.remove(0)
}

/// A scalar as compose would turn it into a string.
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

/// A service's `environment`, in either the mapping or the `KEY=VALUE` list form, raw
/// (before `${...}` interpolation).
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    let env = &service["environment"];
    let mut out = BTreeMap::new();
    if let Some(hash) = env.as_hash() {
        for (k, v) in hash {
            let key = scalar(k).expect("environment key");
            out.insert(key, scalar(v).unwrap_or_default());
        }
    } else if let Some(list) = env.as_vec() {
        for item in list {
            let item = item.as_str().expect("environment entry is a string");
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            out.insert(k.to_owned(), v.to_owned());
        }
    }
    out
}

#[derive(Debug)]
struct EnvFile {
    path: String,
    required: bool,
}

/// A service's `env_file`: one path, a list of paths, or a list of `{path, required}`.
fn env_files(service: &Yaml) -> Vec<EnvFile> {
    let entry = |item: &Yaml| match item.as_str() {
        Some(path) => EnvFile { path: path.to_owned(), required: true },
        None => EnvFile {
            path: item["path"].as_str().expect("env_file entry has a path").to_owned(),
            required: item["required"].as_bool().unwrap_or(true),
        },
    };
    match &service["env_file"] {
        Yaml::Array(items) => items.iter().map(entry).collect(),
        Yaml::BadValue => Vec::new(),
        single => vec![entry(single)],
    }
}

/// The environment compose gives a service's process when `.env` holds `dot_env`: the
/// `env_file` entries first, then `environment`, interpolated from `.env`, over them.
fn container_environment(service: &Yaml, dot_env: &HashMap<String, String>) -> HashMap<String, String> {
    let mut process = HashMap::new();
    if env_files(service).iter().any(|f| f.path == ".env") {
        process.extend(dot_env.clone());
    }
    for (name, raw) in environment(service) {
        process.insert(name, interpolate(&raw, dot_env));
    }
    process
}

/// The healthcheck's command as one string, or `None` if there is none or it is disabled.
fn healthcheck_command(service: &Yaml) -> Option<String> {
    let healthcheck = &service["healthcheck"];
    if healthcheck["disable"].as_bool() == Some(true) {
        return None;
    }
    let test = &healthcheck["test"];
    if let Some(s) = test.as_str() {
        return Some(s.to_owned());
    }
    let parts: Vec<String> = test.as_vec()?.iter().filter_map(scalar).collect();
    match parts.first().map(String::as_str) {
        Some("NONE") | None => None,
        Some("CMD" | "CMD-SHELL") => Some(parts[1..].join(" ")),
        Some(_) => Some(parts.join(" ")),
    }
}

fn declared_volumes(compose: &Yaml) -> BTreeSet<String> {
    compose["volumes"].as_hash().map(|h| h.keys().filter_map(scalar).collect()).unwrap_or_default()
}

#[derive(Debug)]
struct Mount {
    source: String,
    target: String,
}

/// A service's volume mounts, short (`source:target[:mode]`) or long syntax.
fn mounts(service: &Yaml) -> Vec<Mount> {
    let Some(list) = service["volumes"].as_vec() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|v| {
            if let Some(short) = v.as_str() {
                let mut parts = short.split(':');
                let source = parts.next()?.to_owned();
                let target = parts.next()?.to_owned();
                Some(Mount { source, target })
            } else {
                Some(Mount {
                    source: v["source"].as_str()?.to_owned(),
                    target: v["target"].as_str()?.to_owned(),
                })
            }
        })
        .collect()
}

/// Container ports of a service's `ports`, short or long syntax.
fn published_container_ports(service: &Yaml) -> Vec<u16> {
    let Some(list) = service["ports"].as_vec() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|p| {
            let raw = if p["target"].is_badvalue() { scalar(p)? } else { scalar(&p["target"])? };
            let container = raw.rsplit(':').next()?;
            container.split('/').next()?.parse().ok()
        })
        .collect()
}

struct PostgresSettings {
    user: String,
    password: String,
    database: String,
}

/// What the `db` service's postgres image is told, after interpolation with `vars`.
fn postgres_settings(compose: &Yaml, vars: &HashMap<String, String>) -> PostgresSettings {
    let env = environment(&compose["services"]["db"]);
    let get = |name: &str| env.get(name).map(|raw| interpolate(raw, vars));
    let user = get("POSTGRES_USER").filter(|u| !u.is_empty()).unwrap_or_else(|| "postgres".to_owned());
    let password = get("POSTGRES_PASSWORD").expect("db sets POSTGRES_PASSWORD");
    let database = get("POSTGRES_DB").filter(|d| !d.is_empty()).unwrap_or_else(|| user.clone());
    PostgresSettings { user, password, database }
}

struct PostgresUrl {
    user: String,
    password: String,
    host: String,
    port: Option<u16>,
    database: String,
}

fn parse_postgres_url(url: &str) -> Option<PostgresUrl> {
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"))?;
    let (authority, path) = rest.split_once('/')?;
    let (userinfo, hostport) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
        None => (hostport, None),
    };
    let database = path.split('?').next()?;
    Some(PostgresUrl {
        user: user.to_owned(),
        password: password.to_owned(),
        host: host.to_owned(),
        port,
        database: database.to_owned(),
    })
}

// ---------------------------------------------------------------------------------------
// Helpers: variable interpolation
// ---------------------------------------------------------------------------------------

/// A `${...}` reference: the variable, the operator (`:-`, `-`, `:?`, `?`, `:+`, `+` or
/// empty) and the raw word after it.
struct Reference {
    name: String,
    operator: String,
    word: String,
}

fn parse_reference(body: &str) -> Reference {
    let end = body.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(body.len());
    let (name, rest) = body.split_at(end);
    let operator_len = if rest.starts_with(':') { 2 } else { 1 }.min(rest.len());
    let (operator, word) = rest.split_at(operator_len);
    Reference { name: name.to_owned(), operator: operator.to_owned(), word: word.to_owned() }
}

/// Index of the `}` closing the `${` that starts at `start`.
fn closing_brace(s: &str, start: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            depth += 1;
            i += 2;
            continue;
        }
        if bytes[i] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

/// Compose's interpolation of `$NAME`, `${NAME}`, `${NAME:-default}` etc. against
/// `vars` (standing for the shell environment and `.env`); `$$` is a literal `$`.
fn interpolate(s: &str, vars: &HashMap<String, String>) -> String {
    substitute(s, true, &|name| vars.get(name).cloned())
}

/// A POSIX shell's parameter expansion, for commands run inside a container.
fn expand_shell(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    substitute(s, false, &lookup)
}

fn substitute(s: &str, dollar_escape: bool, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(offset) = s[i..].find('$') {
        let at = i + offset;
        out.push_str(&s[i..at]);
        let rest = &s[at + 1..];
        if dollar_escape && rest.starts_with('$') {
            out.push('$');
            i = at + 2;
        } else if rest.starts_with('{') {
            let close = closing_brace(s, at).unwrap_or_else(|| panic!("unclosed ${{ in {s:?}"));
            let reference = parse_reference(&s[at + 2..close]);
            let value = lookup(&reference.name);
            let set = value.as_deref().is_some_and(|v| !v.is_empty());
            let word = || substitute(&reference.word, dollar_escape, lookup);
            out.push_str(&match reference.operator.as_str() {
                ":-" if !set => word(),
                "-" if value.is_none() => word(),
                ":+" => {
                    if set {
                        word()
                    } else {
                        String::new()
                    }
                }
                "+" => {
                    if value.is_some() {
                        word()
                    } else {
                        String::new()
                    }
                }
                ":?" | "?" => value.unwrap_or_else(|| panic!("{} is required in {s:?}", reference.name)),
                _ => value.unwrap_or_default(),
            });
            i = close + 1;
        } else {
            let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&rest[..len]).unwrap_or_default());
            }
            i = at + 1 + len;
        }
    }
    out.push_str(&s[i..]);
    out
}

// ---------------------------------------------------------------------------------------
// Helpers: secrets
// ---------------------------------------------------------------------------------------

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    // The password reset's lifetime and link are settings, not passwords.
    if name.starts_with("PASSWORD_RESET_") {
        return false;
    }
    ["PASSWORD", "PASSWD", "SECRET"].iter().any(|w| name.contains(w))
        || name.ends_with("_KEY")
        || name.ends_with("_TOKEN")
}

fn looks_like_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    PLACEHOLDER_MARKERS.iter().any(|m| lower.contains(m))
}

/// A compose value holding a secret must be a variable reference (so the real value
/// comes from the environment or `.env`) whose default, if any, is a placeholder.
fn assert_safe_reference(raw: &str, context: &str) {
    let raw = raw.trim();
    if raw.is_empty() {
        return;
    }
    let is_single_reference = raw.starts_with("${") && closing_brace(raw, 0) == Some(raw.len() - 1);
    assert!(is_single_reference, "{context}: {raw:?} is a literal; use ${{VARIABLE:-dev-placeholder}}");
    let reference = parse_reference(&raw[2..raw.len() - 1]);
    if matches!(reference.operator.as_str(), ":-" | "-") {
        let default = interpolate(&reference.word, &HashMap::new());
        assert!(
            default.is_empty() || looks_like_placeholder(&default),
            "{context}: default {default:?} looks like a real secret (mark it dev/example/change)"
        );
    }
}

/// A literal secret value (in `.env.example`) must be empty or an obvious placeholder.
fn assert_safe_literal(value: &str, context: &str) {
    assert!(
        value.trim().is_empty() || looks_like_placeholder(value),
        "{context}: {value:?} looks like a real secret (mark it dev/example/change)"
    );
}

/// The password part of a `scheme://user:password@host/...` value, raw; `${...}`
/// references are kept whole even though they contain `:`.
fn raw_url_password(raw: &str) -> Option<String> {
    let (_, rest) = raw.split_once("://")?;
    let authority = split_outside_references(rest, '/').into_iter().next()?;
    let parts = split_outside_references(&authority, '@');
    if parts.len() < 2 {
        return None;
    }
    let userinfo = parts[..parts.len() - 1].join("@");
    let mut fields = split_outside_references(&userinfo, ':').into_iter();
    fields.next()?;
    let password: Vec<String> = fields.collect();
    (!password.is_empty()).then(|| password.join(":"))
}

fn split_outside_references(s: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    let mut previous = '\0';
    for c in s.chars() {
        match c {
            '{' if previous == '$' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            _ => {}
        }
        if c == separator && depth == 0 {
            parts.push(String::new());
        } else {
            parts.last_mut().unwrap().push(c);
        }
        previous = c;
    }
    parts
}

/// No PEM block and no long random-looking token anywhere.
fn assert_not_key_material(value: &str, context: &str) {
    assert!(!value.contains("-----BEGIN"), "{context}: contains a PEM block");
    let longest_token = value
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest_token < 32, "{context}: {value:?} contains a long random-looking token");
}

// ---------------------------------------------------------------------------------------
// Helpers: .env.example
// ---------------------------------------------------------------------------------------

struct Assignment {
    name: String,
    value: String,
    /// false when the line is commented out.
    active: bool,
}

/// Every `NAME=value` line of `.env.example`, including commented-out ones.
fn env_example() -> Vec<Assignment> {
    let assignments: Vec<Assignment> = read(".env.example")
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let (active, line) = match line.strip_prefix('#') {
                Some(commented) => (false, commented.trim_start()),
                None => (true, line),
            };
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            let is_name = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_name.then(|| Assignment {
                name: name.to_owned(),
                value: value.trim().trim_matches(|c| c == '"' || c == '\'').to_owned(),
                active,
            })
        })
        .collect();
    assert!(!assignments.is_empty(), ".env.example names no variables");
    assignments
}

/// The active assignments of `.env.example`, as compose would read them from `.env`.
fn env_example_values() -> HashMap<String, String> {
    env_example().into_iter().filter(|a| a.active).map(|a| (a.name, a.value)).collect()
}

// ---------------------------------------------------------------------------------------
// Helpers: Dockerfile
// ---------------------------------------------------------------------------------------

struct Instruction {
    keyword: String,
    args: String,
}

/// The Dockerfile's instructions, continuation lines joined and comments dropped, split
/// into stages at each FROM (the FROM itself opens its stage).
fn dockerfile_stages() -> Vec<Vec<Instruction>> {
    let text = read("Dockerfile");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if instruction.keyword == "FROM" {
            stages.push(Vec::new());
        }
        // ARGs before the first FROM belong to no stage.
        if let Some(stage) = stages.last_mut() {
            stage.push(instruction);
        }
    }
    stages
}

/// The runtime stage's ENV settings (`ENV A=1 B=2` or `ENV A 1`).
fn dockerfile_env() -> BTreeMap<String, String> {
    let stages = dockerfile_stages();
    let mut env = BTreeMap::new();
    for instruction in stages.last().unwrap().iter().filter(|i| i.keyword == "ENV") {
        let args = instruction.args.as_str();
        let first = args.split_whitespace().next().unwrap_or("");
        if first.contains('=') {
            for pair in args.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
                env.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
        } else if let Some((k, v)) = args.split_once(' ') {
            env.insert(k.to_owned(), v.trim().trim_matches('"').to_owned());
        }
    }
    env
}
