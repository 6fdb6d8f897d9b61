//! `tollgate user import`: the real binary on dumps of a real Django (tests/fixtures/django,
//! see make_users.py there), the accounts checked through the server's HTTP API and rows.

use std::collections::BTreeMap;

use crate::cli::{login, succeeds, tollgate};
use crate::common::*;
use diesel::prelude::*;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

db_tests!(
    the_django_dump_imports_and_every_user_logs_in_with_the_password_they_had,
    roles_disabled_email_and_dates_come_from_the_dump,
    numeric_groups_need_the_groups_dump,
    groups_named_like_reserved_roles_grant_nothing_and_are_reported,
    importing_again_skips_everyone_and_changes_nothing,
    bad_records_are_rejected_with_their_pk_and_reason,
    standard_input_and_a_custom_username_field,
    input_that_is_not_a_dump_stops_with_exit_1_after_whole_batches,
    hashes_costlier_than_djangos_defaults_are_rejected_and_never_verified,
    emails_verified_marks_the_imported_addresses_verified,
);

async fn emails_verified_marks_the_imported_addresses_verified(backend: Backend) {
    let plain = spawn_app(backend.clone()).await;
    import(&plain, &[&fixture("users.json")]);
    assert!(!plain.user_row("argon2_user").email_verified, "not without the flag");
    let app = spawn_app(backend).await;
    import(&app, &[&fixture("users.json"), "--emails-verified"]);
    let with_email = app.user_row("argon2_user");
    assert!(with_email.email.is_some() && with_email.email_verified);
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/django");

/// The real dump's report: the refused MD5 hash, the address Django let through, and the
/// second of two usernames that differ only in case.
const REPORT: &str = "imported 8, skipped 0, rejected 3\n\
    pk 7: email is not a valid address\n\
    pk 8: username \"mixed.case+user@x\" differs only in case from an earlier record's; usernames are unique regardless of case\n\
    pk 11: password: refused hasher md5: unsalted and MD5/SHA1-only hashes are too weak to keep\n";

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// The Django users that import and can log in, with the passwords they had there.
fn passwords() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixture("passwords.json")).unwrap();
    let mut passwords: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
    for rejected in ["Mixed.Case+user@x", "MIXED.case+USER@x", "md5_user", "inactive_user"] {
        passwords.remove(rejected).unwrap();
    }
    passwords
}

fn import(app: &TestApp, args: &[&str]) -> String {
    let mut full = vec!["user", "import"];
    full.extend_from_slice(args);
    succeeds(app, &full, "")
}

async fn the_django_dump_imports_and_every_user_logs_in_with_the_password_they_had(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(import(&app, &[&fixture("users.json")]), REPORT);
    let passwords = passwords();
    let mut algorithms = Vec::new();
    for (username, password) in &passwords {
        let stored = app.user_row(username).password_hash;
        let algorithm = stored.split('$').next().unwrap().to_owned();
        algorithms.push(algorithm.clone());
        // A wrong password, and the right one changed in case or cut short, are refused.
        // At once: with imported hashes about, each failure waits out the floor.
        let wrong =
            ["wrong password".to_owned(), password.to_uppercase(), password[..password.len() - 1].to_owned()];
        for refused in join_all(wrong.iter().map(|wrong| app.login(username, wrong))).await {
            assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        }
        assert_eq!(app.user_row(username).password_hash, stored, "a refused login changes nothing");

        let body = login(&app, &username.to_uppercase(), password).await;
        assert_eq!(body["user"]["username"], username.as_str());
        let rehashed = app.user_row(username).password_hash;
        assert!(rehashed.starts_with("$argon2id$v=19$"), "{username}: {algorithm} became argon2id");
        // The new hash serves the next login; the session is a normal one.
        let again = login(&app, username, password).await;
        assert_eq!(app.user_row(username).password_hash, rehashed, "re-hashed once");
        assert_eq!(app.refresh(field(&again, "refresh_token")).await.status(), StatusCode::OK);
        assert_error(
            app.login(username, "wrong password").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    algorithms.sort();
    assert_eq!(algorithms, ["argon2", "bcrypt", "bcrypt_sha256", "pbkdf2_sha1", "pbkdf2_sha256", "scrypt"]);

    // At Django's default cost too (pbkdf2_sha256, 1,000,000 iterations), and a password
    // far below tollgate's minimum for new ones (Django let it be set, so it logs in).
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("hashes.json")).unwrap()).unwrap();
    let default_cost = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["encoded"].as_str().unwrap().starts_with("pbkdf2_sha256$1000000$"))
        .unwrap();
    let short = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["hasher"] == "pbkdf2_sha256" && v["password"] == "")
        .unwrap();
    let dump = json!([
        record(100, json!({ "username": "default_cost", "password": default_cost["encoded"] })),
        record(101, json!({ "username": "short", "password": short["encoded"] })),
    ]);
    let out = tollgate(&app, &["user", "import", "-"], &dump.to_string());
    assert_eq!(out.stdout, b"imported 2, skipped 0, rejected 0\n");
    login(&app, "default_cost", field(default_cost, "password")).await;
    login(&app, "short", field(short, "password")).await;
    assert!(app.user_row("short").password_hash.starts_with("$argon2id$"));
}

async fn roles_disabled_email_and_dates_come_from_the_dump(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &[&fixture("users.json")]);
    let passwords = passwords();
    let roles = |username: &str| {
        let passwords = &passwords;
        let app = &app;
        let username = username.to_owned();
        async move { login(app, &username, &passwords[&username]).await["user"]["roles"].clone() }
    };
    // is_staff → staff, is_superuser → admin, groups (natural keys) → their names as roles.
    assert_eq!(roles("argon2_user").await, json!(["editors", "staff", "support_team"]));
    assert_eq!(roles("bcrypt_user").await, json!(["admin", "staff"]));
    assert_eq!(roles("pbkdf2_user").await, json!(["editors"]));
    assert_eq!(roles("scrypt_user").await, json!(["support_team"]));
    assert_eq!(roles("pbkdf2_sha1_user").await, json!([]));
    let admin = login(&app, "bcrypt_user", &passwords["bcrypt_user"]).await;
    let users = app.get_with_bearer("/admin/users", field(&admin, "access_token")).await;
    assert_eq!(users.status(), StatusCode::OK, "an imported superuser is a tollgate admin");

    // is_active=false → disabled: the right password learns so, a wrong one does not.
    assert_error(
        app.login("inactive_user", "wrong password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_error(
        app.login("inactive_user", "inactive password").await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
    assert!(app.user_row("inactive_user").disabled);
    succeeds(&app, &["user", "enable", "inactive_user"], "");
    login(&app, "inactive_user", "inactive password").await;

    // An unusable Django password never logs in, until set-password gives it one.
    let wrong = assert_error(
        app.login("pbkdf2_user", "wrong").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let stored = app.user_row("unusable_user").password_hash;
    assert!(stored.starts_with('!'));
    for attempt in ["", "!", &stored, &stored[1..], PASSWORD] {
        let body = assert_error(
            app.login("unusable_user", attempt).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
        assert_eq!(body, wrong, "the same answer as a wrong password");
    }
    succeeds(&app, &["user", "set-password", "unusable_user"], &format!("{PASSWORD}\n"));
    login(&app, "unusable_user", PASSWORD).await;

    // Email lower-cased, date_joined kept as created_at.
    let dump: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("users.json")).unwrap()).unwrap();
    let argon2 = dump.iter().find(|r| r["fields"]["username"] == "argon2_user").unwrap();
    let body = login(&app, "argon2_user", &passwords["argon2_user"]).await;
    assert_eq!(body["user"]["email"], "argon2_user@example.org");
    let joined = field(&argon2["fields"], "date_joined");
    assert_eq!(field(&body["user"], "created_at"), format!("{}Z", &joined[..19]));
}

async fn numeric_groups_need_the_groups_dump(backend: Backend) {
    let app = spawn_app(backend).await;
    let numeric = fixture("users-numeric-groups.json");
    let out = import(&app, &[&numeric]);
    assert!(out.starts_with("imported 5, skipped 0, rejected 6\n"), "{out}");
    assert!(out.contains("pk 3: group 1 is an id: give the groups' dump with --groups FILE\n"), "{out}");
    assert!(out.contains("pk 6: group 2 is an id"), "{out}");

    // With the groups' dump, the users the first run rejected come over with their roles.
    let out = import(&app, &[&numeric, "--groups", &fixture("groups.json")]);
    assert!(out.starts_with("imported 3, skipped 5, rejected 3\n"), "{out}");
    let passwords = passwords();
    let body = login(&app, "argon2_user", &passwords["argon2_user"]).await;
    assert_eq!(body["user"]["roles"], json!(["editors", "staff", "support_team"]));
    let body = login(&app, "scrypt_user", &passwords["scrypt_user"]).await;
    assert_eq!(body["user"]["roles"], json!(["support_team"]));

    // A groups file that is not one is refused before anything is imported.
    let output = tollgate(&app, &["user", "import", &numeric, "--groups", &fixture("passwords.json")], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("groups file"));
    assert_eq!(output.stdout, b"");
}

async fn groups_named_like_reserved_roles_grant_nothing_and_are_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    let dump = fixture("users-reserved-groups.json");
    let out = import(&app, &[&dump]);
    let roles = |username: &'static str| {
        let app = &app;
        async move { login(app, username, "pbkdf2 password").await }
    };
    // Neither staff nor superuser in Django: the groups "Admin" and "STAFF" give nothing.
    let member = roles("in_admin_and_staff_groups").await;
    assert_eq!(member["user"]["roles"], json!(["editors"]));
    assert_eq!(access_claims(field(&member, "access_token"))["roles"], json!(["editors"]));
    let users = app.get_with_bearer("/admin/users", field(&member, "access_token")).await;
    assert_error(users, StatusCode::FORBIDDEN, "forbidden").await;
    // The flags still grant their roles, and a group whose name is merely like one is kept.
    assert_eq!(roles("staff_in_admin_group").await["user"]["roles"], json!(["staff"]));
    assert_eq!(
        roles("superuser_in_admin_groups").await["user"]["roles"],
        json!(["admin", "admins", "staff"])
    );
    assert_eq!(
        out,
        "imported 3, skipped 0, rejected 0\n\
         pk 1: imported without group \"Admin\": role \"admin\" is reserved for is_superuser\n\
         pk 1: imported without group \"STAFF\": role \"staff\" is reserved for is_staff\n\
         pk 2: imported without group \"Admin\": role \"admin\" is reserved for is_superuser\n"
    );
    // Run again, everyone is skipped and nothing is reported: nothing was withheld now.
    assert_eq!(import(&app, &[&dump]), "imported 0, skipped 3, rejected 0\n");

    // Numeric groups resolved through --groups follow the same rule.
    let group = json!({ "model": "auth.group", "pk": 7, "fields": { "name": "Staff", "permissions": [] } });
    let groups = write_dump(&app, "groups.json", &[group]);
    let numeric = write_dump(&app, "numeric.json", &[record(20, json!({ "groups": [7] }))]);
    assert_eq!(
        import(&app, &[&numeric, "--groups", &groups]),
        "imported 1, skipped 0, rejected 0\n\
         pk 20: imported without group \"Staff\": role \"staff\" is reserved for is_staff\n"
    );
    assert_eq!(login(&app, "user20", "pbkdf2 password").await["user"]["roles"], json!([]));
}

async fn importing_again_skips_everyone_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend.clone()).await;
    let dump = fixture("users.json");
    assert_eq!(import(&app, &[&dump]), REPORT);
    let passwords = passwords();
    login(&app, "scrypt_user", &passwords["scrypt_user"]).await;
    let before = app.user_row("scrypt_user");
    let listed = succeeds(&app, &["user", "list", "--json"], "");

    let again = REPORT.replace("imported 8, skipped 0", "imported 0, skipped 8");
    assert_eq!(import(&app, &[&dump]), again);
    assert_eq!(succeeds(&app, &["user", "list", "--json"], ""), listed);
    let after = app.user_row("scrypt_user");
    assert_eq!(
        (after.id, after.password_hash),
        (before.id, before.password_hash),
        "the argon2id re-hash stays"
    );
    login(&app, "scrypt_user", &passwords["scrypt_user"]).await;

    // A signup before the import is skipped alike, whatever the case in the dump.
    let app = spawn_app(backend).await;
    app.signup("argon2_user").await;
    assert!(import(&app, &[&dump]).starts_with("imported 7, skipped 1, rejected 3\n"));
    login(&app, "argon2_user", PASSWORD).await;
}

/// A one-record dump: a valid Django user with `fields` changed by `change`.
fn record(pk: i64, change: Value) -> Value {
    let mut fields = json!({
        "password": "pbkdf2_sha256$1000$WDB1qiaJxU3HEMx4HtobrY$7ulBAGeIbKJ3qM6FNxTaEJsHvwWhFznyjhR3WYF4qmY=",
        "username": format!("user{pk}"),
        "email": "",
        "is_active": true, "is_staff": false, "is_superuser": false,
        "date_joined": "2026-12-02T01:34:12.550Z",
        "groups": [],
    });
    for (key, value) in change.as_object().unwrap() {
        fields[key] = value.clone();
    }
    json!({ "model": "auth.user", "pk": pk, "fields": fields })
}

fn write_dump(app: &TestApp, name: &str, records: &[Value]) -> String {
    let path = app.dir.path().join(name);
    std::fs::write(&path, serde_json::to_vec(records).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn bad_records_are_rejected_with_their_pk_and_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let md5 = "md5$q4g8dVSlQp3EINnB4rcR9c$0f6c5b5a2d2f8e0b6f9e1c6a3f9f1e2d";
    let records = [
        record(1, json!({})),
        json!(42),
        json!({ "model": "auth.user", "pk": 3 }),
        record(4, json!({ "username": null })),
        record(5, json!({ "username": "has space" })),
        record(6, json!({ "password": "argon3$what$ever" })),
        record(7, json!({ "password": md5 })),
        record(8, json!({ "password": "5f4dcc3b5aa765d61d8327deb882cf99" })),
        record(9, json!({ "password": "pbkdf2_sha256$1000$salt$not base64!" })),
        record(10, json!({ "password": "pbkdf2_sha256$99999999999$salt$AAAA" })),
        record(11, json!({ "email": "not an address" })),
        record(12, json!({ "is_active": "yes" })),
        record(13, json!({ "date_joined": "last tuesday" })),
        record(14, json!({ "groups": [["x".repeat(65)]] })),
        record(15, json!({ "groups": "editors" })),
        record(16, json!({ "username": "User1" })),
        record(17, json!({ "email": "Seventeen@Example.COM", "date_joined": null, "groups": [["Ops"]] })),
    ];
    let out = import(&app, &[&write_dump(&app, "bad.json", &records)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "imported 2, skipped 0, rejected 15", "{out}");
    let reasons: Vec<(&str, &str)> = lines[1..].iter().map(|l| l.split_once(": ").unwrap()).collect();
    let expected = [
        ("pk ?", "record is not a JSON object"),
        ("pk 3", "record has no \"fields\" object"),
        ("pk 4", "record has no \"username\" string"),
        ("pk 5", "username: username must be 1 to 150 characters"),
        ("pk 6", "password: unknown password hash format"),
        ("pk 7", "password: refused hasher md5"),
        ("pk 8", "password: refused hasher unsalted_md5"),
        ("pk 9", "password: malformed pbkdf2_sha256 hash"),
        ("pk 10", "password: pbkdf2_sha256 hash too expensive"),
        ("pk 11", "email is not a valid address"),
        ("pk 12", "is_active is not a boolean"),
        ("pk 13", "date_joined is not an ISO 8601 date and time"),
        ("pk 14", "group \"xxxx"),
        ("pk 15", "groups is not an array"),
        ("pk 16", "username \"user1\" differs only in case"),
    ];
    assert_eq!(reasons.len(), expected.len(), "{out}");
    for ((pk, reason), (want_pk, want_reason)) in reasons.iter().zip(expected) {
        assert_eq!(*pk, want_pk, "{out}");
        assert!(reason.starts_with(want_reason), "{pk}: {reason}");
    }
    // No line shows a hash, whole or in part.
    assert!(
        !out.contains("q4g8dVSlQp3EINnB") && !out.contains("5f4dcc3b") && !out.contains("WDB1qia"),
        "{out}"
    );

    let listed = succeeds(&app, &["user", "list"], "");
    let names: Vec<&str> = listed.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(names, ["user1", "user17"]);
    let body = login(&app, "user17", "pbkdf2 password").await;
    assert_eq!(body["user"]["email"], "seventeen@example.com");
    assert_eq!(body["user"]["roles"], json!(["ops"]));
    assert_eq!(login(&app, "user1", "pbkdf2 password").await["user"]["email"], Value::Null);
}

async fn standard_input_and_a_custom_username_field(backend: Backend) {
    let app = spawn_app(backend).await;
    // A custom user model that logs in by email: no username field at all.
    let mut records = vec![
        record(1, json!({ "email": "Ann@Example.com" })),
        record(2, json!({ "email": "bob@example.com" })),
    ];
    for r in &mut records {
        r["model"] = json!("accounts.customuser");
        r["fields"].as_object_mut().unwrap().remove("username");
    }
    let dump = serde_json::to_string(&records).unwrap();
    let out = tollgate(&app, &["user", "import", "-", "--username-field", "email"], &dump);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "imported 2, skipped 0, rejected 0\n");
    let body = login(&app, "ann@example.com", "pbkdf2 password").await;
    assert_eq!(body["user"]["username"], "ann@example.com");
    assert_eq!(body["user"]["email"], "ann@example.com");

    // Without the option, the same dump has no usernames.
    let out = tollgate(&app, &["user", "import", "-"], &dump);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "imported 0, skipped 0, rejected 2\npk 1: record has no \"username\" string\npk 2: record has no \"username\" string\n"
    );
}

async fn input_that_is_not_a_dump_stops_with_exit_1_after_whole_batches(backend: Backend) {
    let app = spawn_app(backend).await;
    for (input, what) in [("garbage", "expected value"), ("{\"pk\": 1}", "a JSON array"), ("", "EOF")] {
        let output = tollgate(&app, &["user", "import", "-"], input);
        assert_eq!(output.status.code(), Some(1), "{input:?}");
        assert_eq!(String::from_utf8(output.stdout).unwrap(), "imported 0, skipped 0, rejected 0\n");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("not a dumpdata JSON array") && stderr.contains(what), "{stderr}");
    }
    let output = tollgate(&app, &["user", "import", "/no/such/dump.json"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/dump.json"));

    // A dump cut off after 1,500 records: the first batch of 1,000 is written whole, the
    // rest not at all; the full dump then brings the rest.
    let records: Vec<Value> = (1..=1500).map(|pk| record(pk, json!({}))).collect();
    let full = serde_json::to_string(&records).unwrap();
    let cut = &full[..full.len() - 40];
    let output = tollgate(&app, &["user", "import", "-"], cut);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "imported 1000, skipped 0, rejected 0\n");
    let listed = succeeds(&app, &["user", "list"], "");
    assert_eq!(listed.lines().count(), 1000);
    let row = app.user_row("user1000");
    assert!(row.password_hash.starts_with("pbkdf2_sha256$"));
    assert_eq!(
        tollgate(&app, &["user", "import", "-"], &full).stdout,
        b"imported 500, skipped 1000, rejected 0\n"
    );
}

/// Whether the server's start-up check would find imported hashes (and so arm the floor
/// that every failed login then waits for, `auth::password::FailureFloor`).
fn imported_hashes_exist(app: &TestApp) -> bool {
    tollgate::db::accounts::imported_hashes_exist(&mut app.pool.get().unwrap()).unwrap()
}

async fn hashes_costlier_than_djangos_defaults_are_rejected_and_never_verified(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("native").await;
    assert!(!imported_hashes_exist(&app));

    // The two: ten times Django's iterations, and bcrypt at 16 times its cost.
    let salt = "OHgz7He6zNR96yj7IvI43U";
    let pbkdf2 = format!("pbkdf2_sha256$10000000${salt}$//HCAbswegJqxsRc0u5U+jABpRzXKcFHkb/4BvpbZU8=");
    let bcrypt = "bcrypt$$2b$16$xKBQzvXSAFN4jLNUheWdjeCzZqQQ.JoxiAtEb6DkW.QMXjkQ311hu";
    let dump = [
        record(1, json!({ "username": "pbkdf2_user", "password": pbkdf2 })),
        record(2, json!({ "username": "bcrypt_user", "password": bcrypt })),
        record(3, json!({ "username": "unusable", "password": "!unusable" })),
    ];
    assert_eq!(
        import(&app, &[&write_dump(&app, "costly.json", &dump)]),
        "imported 1, skipped 0, rejected 2\n\
         pk 1: password: pbkdf2_sha256 hash too expensive to verify: iterations 10000000 is above the cap of 2000000\n\
         pk 2: password: bcrypt hash too expensive to verify: cost 16 is above the cap of 13\n"
    );
    // An unusable Django password is no hash to verify.
    assert!(!imported_hashes_exist(&app));

    // Planted by other means than the import, they still never verify: the account
    // cannot log in, like one without a password.
    for planted in [pbkdf2.as_str(), bcrypt] {
        let mut conn = app.pool.get().unwrap();
        diesel::update(tollgate::db::schema::users::table)
            .filter(tollgate::db::schema::users::username.eq("native"))
            .set(tollgate::db::schema::users::password_hash.eq(planted))
            .execute(&mut **conn)
            .unwrap();
        drop(conn);
        assert!(imported_hashes_exist(&app));
        assert_error(app.login("native", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials")
            .await;
        assert_eq!(app.user_row("native").password_hash, planted);
    }

    // A hash within the caps counts as imported until its user's first login replaces it.
    let dump = [record(4, json!({ "username": "within" }))];
    assert_eq!(
        import(&app, &[&write_dump(&app, "within.json", &dump)]),
        "imported 1, skipped 0, rejected 0\n"
    );
    let mut conn = app.pool.get().unwrap();
    diesel::delete(tollgate::db::schema::users::table)
        .filter(tollgate::db::schema::users::username.eq("native"))
        .execute(&mut **conn)
        .unwrap();
    drop(conn);
    assert!(imported_hashes_exist(&app));
    login(&app, "within", "pbkdf2 password").await;
    assert!(!imported_hashes_exist(&app));
}
