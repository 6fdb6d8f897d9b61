//! `Verifier` against a fake tollgate that counts its requests: JWKS caching, max-age,
//! the unknown-kid cooldown, outages, single-flight fetching and the revocation poller.
#![cfg(feature = "fetch")]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{
    FEED_TOKEN, FakeTollgate, POLL_INTERVAL, TestKey, claims, claims_for, claims_issued_at, closed_url,
    in_session, legacy_claims_for, now, within,
};
use tollgate_verify::{Clock, Error, Verifier, VerifierConfig};
use uuid::Uuid;

#[tokio::test]
async fn verifies_with_cached_keys_fetching_once() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let verifier = Verifier::new(tollgate.config());
    let expected = claims();
    let token = key.sign(&expected);

    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(serde_json::to_value(&claims).unwrap(), expected);
    verifier.verify(&token).await.unwrap();
    verifier.verify(&key.sign(&support::claims())).await.unwrap();
    let in_a_session = in_session(support::claims(), Uuid::new_v4());
    let claims = verifier.verify(&key.sign(&in_a_session)).await.unwrap();
    assert_eq!(serde_json::to_value(&claims).unwrap(), in_a_session);
    assert_eq!(tollgate.jwks_requests(), 1);
}

#[tokio::test]
async fn invalid_tokens_are_rejected_without_extra_fetches() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let verifier = Verifier::new(tollgate.config());
    verifier.verify(&key.sign(&claims())).await.unwrap();

    let mut expired = claims_for(Uuid::new_v4(), now() - 3600);
    expired["exp"] = json!(now() - 600);
    let mut wrong_audience = claims();
    wrong_audience["aud"] = json!("another-service");
    let mut wrong_issuer = claims();
    wrong_issuer["iss"] = json!("not-tollgate");
    let mut missing_jti = claims();
    missing_jti.as_object_mut().unwrap().remove("jti");
    let mut missing_roles = claims();
    missing_roles.as_object_mut().unwrap().remove("roles");
    let mut roles_not_a_list = claims();
    roles_not_a_list["roles"] = json!("admin");
    let mut sid_not_a_uuid = claims();
    sid_not_a_uuid["sid"] = json!("not-a-uuid");
    for claims in
        [expired, wrong_audience, wrong_issuer, missing_jti, missing_roles, roles_not_a_list, sid_not_a_uuid]
    {
        let result = verifier.verify(&key.sign(&claims)).await;
        assert!(matches!(result, Err(Error::Rejected(_))), "{claims}: {result:?}");
    }

    let alg_mismatch =
        key.sign_with_header(&json!({ "alg": "RS256", "typ": "at+jwt", "kid": key.kid }), &claims());
    let wrong_typ = key.sign_with_header(&json!({ "alg": "EdDSA", "typ": "JWT", "kid": key.kid }), &claims());
    let embedded_jwk = key.sign_with_header(
        &json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": key.kid, "jwk": key.jwk() }),
        &claims(),
    );
    for token in [alg_mismatch, wrong_typ, embedded_jwk] {
        assert_eq!(verifier.verify(&token).await, Err(Error::Header));
    }
    let too_long = "x".repeat(5000);
    for garbage in ["", "garbage", "a.b.c", "a.b", too_long.as_str()] {
        assert_eq!(verifier.verify(garbage).await, Err(Error::Malformed));
    }
    let mut tampered = key.sign(&claims());
    let at = tampered.len() - 10;
    let flipped = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, flipped);
    assert!(matches!(verifier.verify(&tampered).await, Err(Error::Rejected(_))));

    assert_eq!(tollgate.jwks_requests(), 1);
}

#[tokio::test]
async fn cache_control_max_age_is_honoured() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    tollgate.set(|s| s.cache_control = Some("public, max-age=1".into()));
    let mut config = tollgate.config();
    config.default_max_age = Duration::from_secs(3600);
    let verifier = Verifier::new(config);
    let token = key.sign(&claims());

    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 1);

    tollgate.clock.advance(Duration::from_millis(1100));
    verifier.verify(&token).await.unwrap();
    // The refresh that verify started is waited for, whether its task has begun or not.
    verifier.wait_for_fetch().await;
    assert_eq!(tollgate.jwks_requests(), 2);
    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 2);
}

#[tokio::test]
async fn default_max_age_applies_without_cache_control() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let mut config = tollgate.config();
    config.default_max_age = Duration::from_millis(500);
    let verifier = Verifier::new(config);
    let token = key.sign(&claims());

    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 1);
    tollgate.clock.advance(Duration::from_millis(600));
    verifier.verify(&token).await.unwrap();
    tollgate.wait_for_jwks_requests(2).await;
    verifier.wait_for_fetch().await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 2);
}

#[tokio::test]
async fn forged_kids_cause_at_most_one_refetch_per_cooldown() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let mut config = tollgate.config();
    config.unknown_kid_cooldown = Duration::from_secs(60);
    let verifier = Verifier::new(config);
    verifier.verify(&key.sign(&claims())).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 1);

    for i in 0..100 {
        let forger = TestKey::generate(&format!("forged-{i}"));
        assert_eq!(verifier.verify(&forger.sign(&claims())).await, Err(Error::UnknownKey));
    }
    // Concurrent ones too.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let verifier = verifier.clone();
            let token = TestKey::generate(&format!("concurrent-{i}")).sign(&claims());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Err(Error::UnknownKey));
    }
    assert!(tollgate.jwks_requests() <= 2, "{}", tollgate.jwks_requests());

    // The genuine key still works, from the cache.
    verifier.verify(&key.sign(&claims())).await.unwrap();
    assert!(tollgate.jwks_requests() <= 2);
}

#[tokio::test]
async fn a_new_key_is_found_by_the_unknown_kid_refetch() {
    let old = TestKey::generate("old");
    let tollgate = FakeTollgate::start(&[&old]).await;
    let mut config = tollgate.config();
    config.unknown_kid_cooldown = Duration::from_millis(400);
    let verifier = Verifier::new(config);
    verifier.verify(&old.sign(&claims())).await.unwrap();

    // Rotation: the JWKS gains a key; the first token signed with it is found at once.
    let new = TestKey::generate("new");
    tollgate.set(|s| s.jwks = support::jwks(&[&old, &new]));
    verifier.verify(&new.sign(&claims())).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 2);
    tollgate.clock.advance(Duration::from_millis(450));

    // A forged kid uses up the cooldown; a key published right after is found only once
    // the cooldown has passed.
    let forged = TestKey::generate("forged").sign(&claims());
    assert_eq!(verifier.verify(&forged).await, Err(Error::UnknownKey));
    assert_eq!(tollgate.jwks_requests(), 3);
    let newest = TestKey::generate("newest");
    tollgate.set(|s| s.jwks = support::jwks(&[&new, &newest]));
    let token = newest.sign(&claims());
    assert_eq!(verifier.verify(&token).await, Err(Error::UnknownKey));
    assert_eq!(tollgate.jwks_requests(), 3);

    tollgate.clock.advance(Duration::from_millis(450));
    verifier.verify(&token).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 4);
    // The key that left the JWKS no longer verifies.
    assert_eq!(verifier.verify(&old.sign(&claims())).await, Err(Error::UnknownKey));
}

#[tokio::test]
async fn keeps_verifying_with_stale_keys_when_tollgate_is_down() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    tollgate.set(|s| s.cache_control = Some("max-age=1".into()));
    let mut config = tollgate.config();
    config.fetch_retry_interval = Duration::from_millis(200);
    let verifier = Verifier::new(config);
    let token = key.sign(&claims());
    verifier.verify(&token).await.unwrap();

    tollgate.stop().await;
    tollgate.clock.advance(Duration::from_millis(1100));
    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.username, "alice");
    verifier.verify(&key.sign(&support::claims())).await.unwrap();
    let forged = TestKey::generate("forged").sign(&support::claims());
    assert_eq!(verifier.verify(&forged).await, Err(Error::UnknownKey));
}

#[tokio::test]
async fn error_answers_and_bad_jwks_keep_the_keys_it_has() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    tollgate.set(|s| s.cache_control = Some("max-age=1".into()));
    let mut config = tollgate.config();
    config.fetch_retry_interval = Duration::from_millis(100);
    let verifier = Verifier::new(config);
    let token = key.sign(&claims());
    verifier.verify(&token).await.unwrap();

    tollgate.clock.advance(Duration::from_millis(1100));
    tollgate.set(|s| s.jwks_status = 500);
    verifier.verify(&token).await.unwrap();
    tollgate.wait_for_jwks_requests(2).await;
    verifier.wait_for_fetch().await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 2, "no retry before fetch_retry_interval");

    tollgate.clock.advance(Duration::from_millis(150));
    tollgate.set(|s| {
        s.jwks_status = 200;
        s.jwks = json!({ "keys": [] });
    });
    verifier.verify(&token).await.unwrap();
    tollgate.wait_for_jwks_requests(3).await;
    verifier.wait_for_fetch().await;
    verifier.verify(&token).await.unwrap();

    // Once tollgate answers properly again, the refreshed keys are used.
    tollgate.clock.advance(Duration::from_millis(150));
    let new = TestKey::generate("key-2");
    tollgate.set(|s| s.jwks = support::jwks(&[&new]));
    verifier.verify(&token).await.unwrap();
    tollgate.wait_for_jwks_requests(4).await;
    verifier.wait_for_fetch().await;
    verifier.verify(&new.sign(&claims())).await.unwrap();
    // The withdrawn key's kid is now unknown: one refetch confirms it is gone.
    assert_eq!(verifier.verify(&token).await, Err(Error::UnknownKey));
    assert_eq!(verifier.verify(&token).await, Err(Error::UnknownKey));
    assert_eq!(tollgate.jwks_requests(), 5);
}

#[tokio::test]
async fn expired_keys_are_served_while_the_refresh_runs() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    tollgate.set(|s| s.cache_control = Some("max-age=1".into()));
    let mut config = tollgate.config();
    // Longer than any test runs: a verify that waited for the refresh would hang.
    config.fetch_timeout = Duration::from_secs(3600);
    let verifier = Verifier::new(config);
    let token = key.sign(&claims());
    verifier.verify(&token).await.unwrap();

    // tollgate now does not answer until the test lets it: requests do not wait for it.
    tollgate.set(|s| s.jwks_held = true);
    tollgate.clock.advance(Duration::from_millis(1100));
    within("verifies while the refresh is held", async {
        verifier.verify(&token).await.unwrap();
        tollgate.wait_for_jwks_requests(2).await;
        for _ in 0..10 {
            verifier.verify(&token).await.unwrap();
        }
    })
    .await;
    tollgate.set(|s| s.jwks_held = false);
    verifier.wait_for_fetch().await;
    assert_eq!(tollgate.jwks_requests(), 2, "one background refresh");
}

#[tokio::test]
async fn never_having_keys_is_keys_unavailable() {
    let key = TestKey::generate("key-1");
    let token = key.sign(&claims());

    let verifier = Verifier::new(VerifierConfig::new(closed_url().await));
    assert!(matches!(verifier.verify(&token).await, Err(Error::KeysUnavailable(_))));

    let tollgate = FakeTollgate::start(&[&key]).await;
    tollgate.set(|s| s.jwks_status = 503);
    let mut config = tollgate.config();
    config.fetch_retry_interval = Duration::from_millis(300);
    let verifier = Verifier::new(config);
    let result = verifier.verify(&token).await;
    assert!(matches!(&result, Err(Error::KeysUnavailable(why)) if why.contains("503")), "{result:?}");
    // Failed fetches are retried no more often than fetch_retry_interval…
    assert!(matches!(verifier.verify(&token).await, Err(Error::KeysUnavailable(_))));
    assert_eq!(tollgate.jwks_requests(), 1);
    // …and service starts once tollgate answers.
    tollgate.set(|s| s.jwks_status = 200);
    tollgate.clock.advance(Duration::from_millis(350));
    verifier.verify(&token).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 2);

    // A JWKS without a usable key (tollgate under HS256) is no key at all.
    let empty = FakeTollgate::start(&[]).await;
    let verifier = Verifier::new(empty.config());
    assert!(matches!(verifier.verify(&token).await, Err(Error::KeysUnavailable(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifies_on_an_empty_cache_share_one_fetch() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    // Held until every task has started: they all find the cache empty.
    tollgate.set(|s| s.jwks_held = true);
    let verifier = Verifier::new(tollgate.config());

    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let verifier = verifier.clone();
            let token = key.sign(&claims());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    tollgate.wait_for_jwks_requests(1).await;
    tollgate.set(|s| s.jwks_held = false);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(tollgate.jwks_requests(), 1);
}

#[tokio::test]
async fn refresh_keys_fetches_now() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let verifier = Verifier::new(tollgate.config());
    assert_eq!(verifier.refresh_keys().await, Ok(1));
    verifier.verify(&key.sign(&claims())).await.unwrap();
    assert_eq!(tollgate.jwks_requests(), 1);

    let verifier = Verifier::new(VerifierConfig::new(closed_url().await));
    assert!(matches!(verifier.refresh_keys().await, Err(Error::KeysUnavailable(_))));
}

fn since_of(query: &str) -> i64 {
    query
        .strip_prefix("since=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no since in {query:?}"))
}

#[tokio::test]
async fn revocation_poller_applies_entries_and_passes_since() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let (revoked, other) = (Uuid::new_v4(), Uuid::new_v4());
    let now = tollgate.clock.unix_secs();
    let feed_now = now + 1000; // recognisable in the next request
    tollgate.set(|s| {
        s.feed_body = json!({
            "revocations": [
                { "sub": revoked, "not_before": now - 10 },
                { "sub": revoked, "not_before": now - 50 },
            ],
            "now": feed_now,
        })
    });
    let verifier = Verifier::new(tollgate.feed_config());
    let poller = verifier.spawn_revocation_poller().expect("a feed token is set");
    assert!(verifier.spawn_revocation_poller().is_none(), "one poller only");
    tollgate.poll_feed(2).await;

    // The latest not_before per user wins: issued 20 s ago is still before it.
    assert_eq!(verifier.verify(&key.sign(&claims_for(revoked, now - 20))).await, Err(Error::Revoked));
    assert!(verifier.verify(&key.sign(&claims_for(revoked, now - 5))).await.is_ok());
    assert!(verifier.verify(&key.sign(&claims_for(other, now - 20))).await.is_ok());

    let requests = tollgate.feed_requests();
    let first_since = since_of(&requests[0].0);
    assert_eq!(first_since, now - 3600 - 30);
    assert_eq!(since_of(&requests[1].0), feed_now);
    for (_, authorization) in &requests {
        assert_eq!(authorization.as_deref(), Some(format!("Bearer {FEED_TOKEN}").as_str()));
    }

    // The poller ends once the verifier is gone.
    drop(verifier);
    tollgate.clock.advance(POLL_INTERVAL);
    within("the poller to stop", poller).await.unwrap();
}

/// A revocation cuts at the millisecond for tokens whose `jti` carries their issue time,
/// also within one second; at the second for tokens or entries without one.
#[tokio::test]
async fn revocations_cut_at_the_millisecond_where_both_sides_have_it() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let (user, old_feed_user) = (Uuid::new_v4(), Uuid::new_v4());
    // In the middle of a second, as tollgate publishes it: `not_before` rounded up.
    let second = tollgate.clock.unix_secs() - 100;
    let at_ms = second * 1000 + 400;
    tollgate.set(|s| {
        s.feed_body = json!({
            "revocations": [
                { "sub": user, "not_before": second + 1, "not_before_ms": at_ms },
                // From a tollgate before millisecond revocation times.
                { "sub": old_feed_user, "not_before": second },
            ],
            "now": second,
        })
    });
    let verifier = Verifier::new(tollgate.feed_config());
    let _poller = verifier.spawn_revocation_poller().unwrap();
    tollgate.poll_feed(2).await;
    let verify = |claims| {
        let token = key.sign(&claims);
        let verifier = &verifier;
        async move { verifier.verify(&token).await.map(drop) }
    };

    // Issued a millisecond before, and at the revocation itself, in one second.
    assert_eq!(verify(claims_issued_at(user, at_ms - 1)).await, Err(Error::Revoked));
    assert_eq!(verify(claims_issued_at(user, at_ms)).await, Ok(()));
    assert_eq!(verify(claims_issued_at(user, at_ms - 400)).await, Err(Error::Revoked));
    // Without the exact time, the second decides: one issued that second, before or
    // after, is refused; one of the next second is not.
    assert_eq!(verify(legacy_claims_for(user, second)).await, Err(Error::Revoked));
    assert_eq!(verify(legacy_claims_for(user, second + 1)).await, Ok(()));
    // An entry in whole seconds refuses what was issued before that second began.
    assert_eq!(verify(claims_issued_at(old_feed_user, second * 1000 - 1)).await, Err(Error::Revoked));
    assert_eq!(verify(claims_issued_at(old_feed_user, second * 1000)).await, Ok(()));
    assert_eq!(verify(legacy_claims_for(old_feed_user, second - 1)).await, Err(Error::Revoked));
    assert_eq!(verify(legacy_claims_for(old_feed_user, second)).await, Ok(()));
}

/// An entry with a `sid` revokes that session of the user; one without revokes them all.
#[tokio::test]
async fn session_entries_revoke_that_session_alone() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let (user, everywhere) = (Uuid::new_v4(), Uuid::new_v4());
    let (ended, kept, stranger) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let now = tollgate.clock.unix_secs();
    let verifier = Verifier::new(tollgate.feed_config());
    let _poller = verifier.spawn_revocation_poller().unwrap();
    let verify = |sub, sid: Option<Uuid>, iat| {
        let mut claims = claims_for(sub, iat);
        if let Some(sid) = sid {
            claims = in_session(claims, sid);
        }
        let token = key.sign(&claims);
        let verifier = &verifier;
        async move { verifier.verify(&token).await.map(drop) }
    };
    tollgate.poll_feed(2).await;
    assert_eq!(verify(user, Some(ended), now - 20).await, Ok(()));

    tollgate.set(|s| {
        s.feed_body = json!({
            "revocations": [
                { "sub": user, "sid": ended, "not_before": now - 10, "not_before_ms": (now - 10) * 1000 },
                { "sub": user, "not_before": now - 100 },
                { "sub": everywhere, "not_before": now - 10 },
            ],
            "now": now,
        })
    });
    // A poll asked for after the entries were published has been applied.
    let seen = tollgate.feed_requests().len();
    tollgate.poll_feed(seen + 2).await;

    assert_eq!(verify(user, Some(ended), now - 20).await, Err(Error::Revoked));
    assert_eq!(verify(user, Some(ended), now - 5).await, Ok(()), "a token of that session issued after");
    assert_eq!(verify(user, Some(kept), now - 20).await, Ok(()));
    assert_eq!(verify(user, None, now - 20).await, Ok(()), "a token without sid");
    assert_eq!(verify(stranger, Some(ended), now - 20).await, Ok(()), "another user's, same sid");
    // The user's own entry still applies to every session.
    for sid in [Some(ended), Some(kept), None] {
        assert_eq!(verify(user, sid, now - 200).await, Err(Error::Revoked), "{sid:?}");
        assert_eq!(verify(everywhere, sid, now - 20).await, Err(Error::Revoked), "{sid:?}");
    }
}

#[tokio::test]
async fn revocation_poller_survives_errors() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let user = Uuid::new_v4();
    let token = key.sign(&claims_for(user, now() - 20));
    tollgate.set(|s| s.feed_status = 500);
    let verifier = Verifier::new(tollgate.feed_config());
    let _poller = verifier.spawn_revocation_poller().unwrap();
    tollgate.poll_feed(2).await;
    verifier.verify(&token).await.unwrap();

    tollgate.set(|s| {
        s.feed_status = 200;
        s.feed_body = json!({ "revocations": "not a list", "now": 1 });
    });
    let seen = tollgate.feed_requests().len();
    tollgate.poll_feed(seen + 2).await;

    tollgate.set(|s| {
        s.feed_body = json!({ "revocations": [{ "sub": user, "not_before": now() }], "now": now() })
    });
    let seen = tollgate.feed_requests().len();
    tollgate.poll_feed(seen + 2).await;
    assert_eq!(verifier.verify(&token).await, Err(Error::Revoked));

    // Failed polls never moved `since` on from its first value (an hour and the leeway
    // ago); the first successful one did.
    let requests = tollgate.feed_requests();
    for (query, _) in &requests[..seen] {
        assert!(since_of(query) < now() - 3600, "{query}");
    }
    assert!(since_of(&requests.last().unwrap().0) > now() - 60);
}

#[tokio::test]
async fn entries_older_than_max_token_age_are_dropped() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let (old_entry, recent_entry) = (Uuid::new_v4(), Uuid::new_v4());
    let (old_session, recent_session, sid) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let now = now();
    tollgate.set(|s| {
        s.feed_body = json!({
            "revocations": [
                { "sub": old_entry, "not_before": now - 5000 },
                { "sub": recent_entry, "not_before": now - 10 },
                { "sub": old_session, "sid": sid, "not_before": now - 5000 },
                { "sub": recent_session, "sid": sid, "not_before": now - 10 },
            ],
            "now": now,
        })
    });
    let verifier = Verifier::new(tollgate.feed_config());
    let _poller = verifier.spawn_revocation_poller().unwrap();
    tollgate.poll_feed(2).await;

    // Tokens that claim a very long life (tollgate never issues such): only the recent
    // entry is still kept.
    let ancient = |sub| {
        let mut claims = in_session(claims_for(sub, now - 7200), sid);
        claims["exp"] = json!(now + 600);
        key.sign(&claims)
    };
    for (old, recent) in [(old_entry, recent_entry), (old_session, recent_session)] {
        assert!(verifier.verify(&ancient(old)).await.is_ok());
        assert_eq!(verifier.verify(&ancient(recent)).await, Err(Error::Revoked));
    }
}

#[tokio::test]
async fn verify_starts_the_poller_by_itself() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let user = Uuid::new_v4();
    tollgate.set(|s| {
        s.feed_body = json!({ "revocations": [{ "sub": user, "not_before": now() }], "now": now() })
    });
    let verifier = Verifier::new(tollgate.feed_config());
    let token = key.sign(&claims_for(user, now() - 60));
    // The first verify starts the poller (whether it answers before or after the first
    // poll is a race).
    let _ = verifier.verify(&token).await;
    tollgate.poll_feed(2).await;
    assert_eq!(verifier.verify(&token).await, Err(Error::Revoked));
    assert!(verifier.spawn_revocation_poller().is_none());
    assert!(verifier.polls_revocations());

    // Without a feed token there is no poller and no feed request.
    let plain = FakeTollgate::start(&[&key]).await;
    let verifier = Verifier::new(plain.config());
    assert!(verifier.spawn_revocation_poller().is_none());
    verifier.verify(&token).await.unwrap();
    // Nothing to wait for, so no race: a poller is spawned inside `verify`, and
    // `polls_revocations` is true from then on (it is above, for the verifier with a
    // token), so a wrongly started one fails the first assertion however late it would
    // poll; a feed request made by `verify` itself reached the fake before `verify`
    // could have its answer, and fails the second.
    assert!(!verifier.polls_revocations());
    assert!(plain.feed_requests().is_empty());
}
