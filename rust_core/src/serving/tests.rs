//! Scorer tests with real (small, owned) LR and FFM models.

use std::sync::Arc;

use prost::Message as _;

use super::experiment::{bucket, ArmCode, Mode, Routing};
use super::proto::{Candidate, ScoreRequest, ScoreResponse};
use super::scorer::hex;
use super::{ExperimentSpec, Scorer};
use crate::error::Error;
use crate::hash;
use crate::model::{Algorithm, Header, Model};
use crate::plan::FeaturePlan;

const FP_CTR: [u8; 32] = [0xab; 32];
const FP_CVR: [u8; 32] = [0x07; 32];

fn plan() -> Arc<FeaturePlan> {
    let json = format!(
        r#"{{"version": 1,
        "raw": [
          {{"name": "app_id", "type": "str", "source": "context", "default": ""}},
          {{"name": "ts", "type": "int", "source": "context", "default": 0}},
          {{"name": "campaign_id", "type": "str", "source": "candidate", "default": null}},
          {{"name": "bid_price", "type": "float", "source": "candidate", "default": 0.0}}
        ],
        "derived": [
          {{"name": "hour", "op": "hour_of_day", "inputs": ["ts"], "params": {{}}}},
          {{"name": "app_campaign", "op": "cross", "inputs": ["app_id", "campaign_id"], "params": {{}}}}
        ],
        "models": {{
          "ctr": {{"seed": 1, "bits": 8, "fingerprint": "{}", "fields": [
            {{"feature": "app_id", "kind": "categorical"}},
            {{"feature": "campaign_id", "kind": "categorical"}},
            {{"feature": "app_campaign", "kind": "categorical"}}]}},
          "cvr": {{"seed": 2, "bits": 6, "fingerprint": "{}", "fields": [
            {{"feature": "hour", "kind": "categorical"}},
            {{"feature": "bid_price", "kind": "numeric"}}]}}
        }}}}"#,
        hex(&FP_CTR),
        hex(&FP_CVR)
    );
    Arc::new(FeaturePlan::from_json(&json).unwrap())
}

/// Deterministic weights that differ per coordinate.
fn weights(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * scale)
        .collect()
}

fn ffm_ctr() -> Arc<Model> {
    let header = Header {
        algorithm: Algorithm::Ffm,
        bits: 8,
        fields: 3,
        k: 2,
        stride: 2,
        normalize: false,
        fingerprint: FP_CTR,
        downsample_rate: 1.0,
    };
    let n = 1 + 256 + 256 * 3 * 2;
    Arc::new(Model::new(header, weights(n, 0.8)).unwrap())
}

fn lr_cvr(fingerprint: [u8; 32]) -> Arc<Model> {
    let header = Header {
        algorithm: Algorithm::Lr,
        bits: 6,
        fields: 2,
        k: 0,
        stride: 0,
        normalize: false,
        fingerprint,
        downsample_rate: 0.5,
    };
    Arc::new(Model::new(header, weights(1 + 64, 2.0)).unwrap())
}

fn scorer(max: usize) -> Scorer {
    Scorer::new(
        plan(),
        vec![
            ("ctr".into(), ffm_ctr(), "3".into()),
            ("cvr".into(), lr_cvr(FP_CVR), "1".into()),
        ],
        max,
    )
    .unwrap()
}

fn candidate(id: &str, pairs: &[(&str, &str)]) -> Candidate {
    Candidate {
        id: id.into(),
        features: pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    }
}

fn request(models: &[&str], candidates: Vec<Candidate>) -> Vec<u8> {
    ScoreRequest {
        request_id: "r1".into(),
        context: std::collections::BTreeMap::from([
            ("app_id".into(), "com.game".into()),
            ("ts".into(), "3700".into()),
        ]),
        candidates,
        models: models.iter().map(|m| (*m).into()).collect(),
    }
    .encode_to_vec()
}

fn tokens(seed: u64, bits: u32, texts: &[&str]) -> Vec<u32> {
    texts
        .iter()
        .map(|t| hash::bucket(t.as_bytes(), seed, bits))
        .collect()
}

#[test]
fn scores_every_model_in_the_requested_order() {
    let s = scorer(10);
    let cands = vec![
        candidate("a", &[("campaign_id", "c1"), ("bid_price", "1.5")]),
        candidate("b", &[("campaign_id", "c2")]),
    ];
    let out = ScoreResponse::decode(
        s.score_request(&request(&["cvr", "ctr"], cands), None)
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    assert_eq!(out.request_id, "r1");
    let names: Vec<(&str, &str)> = out
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.version.as_str()))
        .collect();
    assert_eq!(names, [("cvr", "1"), ("ctr", "3")]);
    let ctr = ffm_ctr();
    let cvr = lr_cvr(FP_CVR);
    for (c, (id, campaign, price)) in [("a", "c1", 1.5f32), ("b", "c2", 0.0)].iter().enumerate() {
        let got = &out.candidates[c];
        assert_eq!(got.id, *id);
        let cross = format!("app_campaign=com.game^{campaign}");
        let ctr_idx = tokens(
            1,
            8,
            &[
                "app_id=com.game",
                &format!("campaign_id={campaign}"),
                &cross,
            ],
        );
        let cvr_idx = tokens(2, 6, &["hour=1", "bid_price"]);
        let want_cvr = cvr.predict_row(&[0, 1], &cvr_idx, &[1.0, *price]);
        let want_ctr = ctr.predict_row(&[0, 1, 2], &ctr_idx, &[1.0, 1.0, 1.0]);
        assert_eq!(got.scores, vec![want_cvr, want_ctr]);
        assert!(want_ctr > 0.0 && want_ctr < 1.0);
    }
}

#[test]
fn empty_model_list_means_all_models_by_name() {
    let s = scorer(10);
    let bytes = s
        .score_request(
            &request(&[], vec![candidate("a", &[("campaign_id", "x")])]),
            None,
        )
        .unwrap();
    let out = ScoreResponse::decode(bytes.as_slice()).unwrap();
    let names: Vec<&str> = out.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["ctr", "cvr"]);
    assert_eq!(out.candidates[0].scores.len(), 2);
}

#[test]
fn bad_requests_get_the_right_error() {
    let s = scorer(2);
    let one = || vec![candidate("a", &[("campaign_id", "x")])];
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            request(&["ctr", "price"], one()),
            "NotFound",
            "model \"price\" is not served",
        ),
        (request(&["ctr"], vec![]), "BadRequest", "no candidates"),
        (
            request(&["ctr", "cvr", "ctr"], one()),
            "BadRequest",
            "request names model \"ctr\" more than once",
        ),
        (
            request(&["ctr"], vec![candidate("a", &[("campaign_id", "x")]); 3]),
            "BadRequest",
            "3 candidates, more than the limit of 2",
        ),
        (
            request(&["ctr"], vec![candidate("z", &[])]),
            "BadRequest",
            "model ctr, candidate \"z\" (#0), feature campaign_id: missing required value",
        ),
        (
            request(&["cvr"], vec![candidate("q", &[("bid_price", "1,5")])]),
            "BadRequest",
            "model cvr, candidate \"q\" (#0), feature bid_price: \"1,5\" does not parse as float",
        ),
        (
            vec![0x1a, 0xff, 0x01],
            "BadRequest",
            "malformed ScoreRequest",
        ),
    ];
    for (bytes, kind, message) in cases {
        let err = s.score_request(&bytes, None).unwrap_err();
        let got_kind = match &err {
            Error::BadRequest(_) => "BadRequest",
            Error::NotFound(_) => "NotFound",
            _ => "other",
        };
        assert_eq!(got_kind, kind, "{err}");
        assert!(
            err.to_string().contains(message),
            "{message:?} not in {err}"
        );
    }
    // Invalid UTF-8 in a map value is a malformed message, not a panic.
    let mut bytes = request(&["ctr"], one());
    let pos = bytes.windows(8).position(|w| w == b"com.game").unwrap();
    bytes[pos] = 0xff;
    assert!(matches!(
        s.score_request(&bytes, None),
        Err(Error::BadRequest(_))
    ));
}

#[test]
fn refuses_a_model_whose_fingerprint_differs_from_its_spec() {
    let err = Scorer::new(
        plan(),
        vec![("cvr".into(), lr_cvr([0x99; 32]), "1".into())],
        10,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&hex(&[0x99; 32])) && msg.contains(&hex(&FP_CVR)),
        "{msg}"
    );
    let err = Scorer::new(
        plan(),
        vec![("nope".into(), lr_cvr(FP_CVR), "1".into())],
        10,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no spec"), "{err}");
}

mod wire_view {
    use prost::Message as _;

    use super::super::proto::{Candidate, ScoreRequest};
    use super::super::wire::{decode_request, RequestView};
    use super::candidate;
    use crate::plan::Lookup;

    fn same_as_prost(bytes: &[u8]) {
        let want = ScoreRequest::decode(bytes).unwrap();
        let got: RequestView<'_> = decode_request(bytes).unwrap();
        assert_eq!(got.request_id, want.request_id);
        let ctx: Vec<(&str, &str)> = want
            .context
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got.context.as_slice(), ctx.as_slice());
        assert_eq!(got.models, want.models);
        assert_eq!(got.candidates.len(), want.candidates.len());
        for (g, w) in got.candidates.iter().zip(&want.candidates) {
            assert_eq!(g.id, w.id);
            let f: Vec<(&str, &str)> = w
                .features
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(g.features.as_slice(), f.as_slice());
        }
    }

    fn sample(id: &str, app: &str, extra: &str) -> ScoreRequest {
        ScoreRequest {
            request_id: id.into(),
            context: [("app_id", app), ("ts", "1"), ("", ""), (extra, "é")]
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            candidates: vec![
                candidate("a", &[("campaign_id", "c1"), ("bid_price", "2")]),
                candidate("", &[]),
            ],
            models: vec!["ctr".into(), String::new()],
        }
    }

    #[test]
    fn agrees_with_prost_including_merges_and_unknown_fields() {
        same_as_prost(&[]);
        let a = sample("r1", "com.a", "x").encode_to_vec();
        same_as_prost(&a);
        // Concatenated messages merge: last request_id and map value win, lists append.
        let mut merged = a.clone();
        merged.extend(sample("r2", "com.b", "y").encode_to_vec());
        same_as_prost(&merged);
        let view = decode_request(&merged).unwrap();
        assert_eq!(
            (view.request_id, view.context.get("app_id")),
            ("r2", Some("com.b"))
        );
        assert_eq!(view.candidates.len(), 4);
        // Unknown fields of every wire type are skipped: 9 varint, 10 fixed64, 11 bytes, 12 fixed32.
        let mut unknown = vec![0x48, 0x96, 0x01, 0x51];
        unknown.extend([0u8; 8]);
        unknown.extend([0x5a, 0x02, b'h', b'i', 0x65, 1, 2, 3, 4]);
        unknown.extend(&a);
        same_as_prost(&unknown);
        let one = ScoreRequest {
            candidates: vec![Candidate::default()],
            ..Default::default()
        };
        same_as_prost(&one.encode_to_vec());
    }

    #[test]
    fn malformed_bytes_are_errors_like_prost() {
        let good = sample("r1", "com.a", "x").encode_to_vec();
        let mut cases: Vec<Vec<u8>> = vec![
            vec![0x0a, 0x05, b'a'],       // truncated string
            vec![0x0a],                   // missing length
            vec![0x08, 0x01],             // request_id as a varint
            vec![0x0a, 0x01, 0xff],       // invalid UTF-8
            vec![0x1a, 0x03, 0x0a, 0x01], // candidate cut short
            vec![0x00],                   // field number 0
            vec![0x0b],                   // start group
            vec![0xff; 11],               // overlong varint
        ];
        for cut in [1, good.len() / 2, good.len() - 1] {
            cases.push(good[..cut].to_vec());
        }
        for bytes in cases {
            let ours = decode_request(&bytes);
            assert!(ours.is_err(), "{bytes:?} decoded as {ours:?}");
            assert!(
                ScoreRequest::decode(bytes.as_slice()).is_err(),
                "prost accepts {bytes:?}"
            );
            assert!(ours
                .unwrap_err()
                .to_string()
                .starts_with("malformed ScoreRequest"));
        }
    }
}

#[test]
fn mutated_requests_never_panic() {
    // A cheap stand-in for fuzzing in `cargo test`: flip, drop and insert bytes of a valid
    // request; every outcome must be a response or an error, never a panic.
    let s = scorer(4);
    let good = request(
        &["cvr", "ctr"],
        vec![candidate("a", &[("campaign_id", "c1"), ("bid_price", "1.5")]); 3],
    );
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = good.clone();
        for _ in 0..=(next() % 4) {
            let at = (next() % bytes.len() as u64) as usize;
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, next() as u8),
            }
            if bytes.is_empty() {
                break;
            }
        }
        match s.score_request(&bytes, None) {
            Ok(_) => ok += 1,
            Err(Error::BadRequest(_) | Error::NotFound(_)) => refused += 1,
            Err(other) => panic!("unexpected error kind: {other}"),
        }
    }
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
}

#[test]
fn counted_scoring_returns_the_response_and_the_candidate_count() {
    let s = scorer(3);
    let cands = vec![
        candidate("a", &[("campaign_id", "c1")]),
        candidate("b", &[("campaign_id", "c2")]),
    ];
    let bytes = request(&[], cands);
    let (response, count) = s.score_request_counted(&bytes, None).unwrap();
    assert_eq!(count, 2);
    assert_eq!(response, s.score_request(&bytes, None).unwrap());
    let over: Vec<_> = (0..4)
        .map(|i| candidate(&format!("c{i}"), &[("campaign_id", "c1")]))
        .collect();
    let err = s
        .score_request_counted(&request(&[], over), None)
        .unwrap_err();
    assert!(err.to_string().contains("4 candidates"), "{err}");
}

#[test]
fn a_request_over_the_defer_limit_is_counted_but_not_scored() {
    let s = scorer(10);
    let cands: Vec<_> = (0..3)
        .map(|i| candidate(&format!("c{i}"), &[("campaign_id", "c1")]))
        .collect();
    let bytes = request(&[], cands);
    assert_eq!(
        s.score_request_unless_over(&bytes, None, 2).unwrap(),
        (None, 3, 0)
    );
    let (scored, count, _) = s.score_request_unless_over(&bytes, None, 3).unwrap();
    assert_eq!(
        (scored, count),
        (Some(s.score_request(&bytes, None).unwrap()), 3)
    );
    // An unknown model is still refused, not deferred.
    let unknown = request(&["nope"], vec![candidate("a", &[]), candidate("b", &[])]);
    assert!(s.score_request_unless_over(&unknown, None, 1).is_err());
}

#[test]
fn the_defer_limit_counts_the_models_a_request_asks_for() {
    // Two served models: 3 candidates for one model are 3 scores, under a limit of 2
    // candidates for both (4 scores); 5 candidates for one model are over it.
    let s = scorer(10);
    let cands = |n: usize| -> Vec<Candidate> {
        (0..n)
            .map(|i| candidate(&format!("c{i}"), &[("campaign_id", "c1")]))
            .collect()
    };
    let (scored, count, _) = s
        .score_request_unless_over(&request(&["ctr"], cands(3)), None, 2)
        .unwrap();
    assert_eq!((scored.is_some(), count), (true, 3));
    let deferred = s
        .score_request_unless_over(&request(&["ctr"], cands(5)), None, 2)
        .unwrap();
    assert_eq!(deferred, (None, 5, 0));
    assert_eq!(
        s.score_request_unless_over(&request(&[], cands(3)), None, 2)
            .unwrap(),
        (None, 3, 0)
    );
}

#[test]
fn a_models_list_over_max_models_is_refused_before_any_scoring() {
    let s = scorer(10).with_max_models(2).unwrap();
    let cands = vec![candidate("a", &[("campaign_id", "c1")])];
    assert!(s
        .score_request(&request(&["ctr", "cvr"], cands.clone()), None)
        .is_ok());
    let names = ["ctr"; 3];
    for defer_over in [usize::MAX, 0] {
        let err = s
            .score_request_unless_over(&request(&names, cands.clone()), None, defer_over)
            .unwrap_err();
        assert!(matches!(err, Error::BadRequest(_)), "{err}");
        assert!(
            err.to_string().contains("3 models, over the limit of 2"),
            "{err}"
        );
    }
    // Within the limit, a name given twice is refused as before.
    let err = s
        .score_request(&request(&["ctr", "ctr"], cands), None)
        .unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
    assert!(scorer(10).with_max_models(0).is_err());
}

#[test]
fn stream_answers_equal_unary_responses_and_refusals_carry_id_and_code() {
    let s = scorer(3);
    let good = request(&[], vec![candidate("a", &[("campaign_id", "c1")])]);
    let unknown = request(&["nope"], vec![candidate("a", &[])]);
    let too_many = request(
        &[],
        (0..4).map(|i| candidate(&format!("c{i}"), &[])).collect(),
    );
    let truncated = good[..good.len() / 2].to_vec();
    let garbage = b"\xff\xfe\xfd garbage".to_vec();
    let requests = vec![
        good.clone(),
        unknown,
        too_many,
        truncated,
        garbage,
        good.clone(),
    ];
    let answers = s.answer_many(&requests, None, 1 << 20, usize::MAX);
    assert_eq!(answers.len(), requests.len());
    let unary = s.score_request(&good, None).unwrap();
    for i in [0, 5] {
        assert_eq!(answers[i].code, "OK");
        assert_eq!(answers[i].candidates, 1);
        assert_eq!(answers[i].response.as_deref(), Some(unary.as_slice()));
    }
    let codes: Vec<&str> = answers[1..5].iter().map(|a| a.code).collect();
    assert_eq!(
        codes,
        [
            "NOT_FOUND",
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT"
        ]
    );
    for (i, answer) in answers[1..5].iter().enumerate() {
        let bytes = answer.response.as_deref().unwrap();
        let response = ScoreResponse::decode(bytes).unwrap();
        let error = response.error.unwrap();
        assert_eq!(error.code, answer.code);
        assert!(!error.message.is_empty());
        assert!(response.candidates.is_empty() && response.models.is_empty());
        // The id is salvaged up to the first undecodable byte; garbage has none.
        let expected = if i == 3 { "" } else { "r1" };
        assert_eq!(response.request_id, expected, "message {i}");
    }
}

#[test]
fn stream_answer_refuses_an_oversized_request_and_defers_big_ones() {
    let s = scorer(10);
    let bytes = request(
        &[],
        (0..3).map(|i| candidate(&format!("c{i}"), &[])).collect(),
    );
    let over = s.answer(&bytes, None, bytes.len() - 1, usize::MAX);
    assert_eq!(over.code, "INVALID_ARGUMENT");
    let response = ScoreResponse::decode(over.response.unwrap().as_slice()).unwrap();
    assert!(response.error.unwrap().message.contains("bytes"));
    assert_eq!(response.request_id, "r1");
    let deferred = s.answer(&bytes, None, bytes.len(), 2);
    assert_eq!(
        (deferred.response, deferred.candidates, deferred.code),
        (None, 3, "OK")
    );
}

#[test]
fn salvaged_request_id_stops_at_the_first_bad_byte() {
    use super::wire::salvage_request_id;
    assert_eq!(salvage_request_id(b""), "");
    assert_eq!(salvage_request_id(b"\x0a\x02ab\x08\x01"), "ab");
    assert_eq!(salvage_request_id(b"\x08\x01\x0a\x02ab"), "ab");
    assert_eq!(salvage_request_id(b"\x0a\x02\xc0\xaf"), "");
    assert_eq!(salvage_request_id(b"\x0a\x05ab"), "");
    assert_eq!(salvage_request_id(b"\x0a\x01a\x0a\x01b"), "b");
}

fn ffm_ctr_treatment() -> Arc<Model> {
    let header = Header {
        algorithm: Algorithm::Ffm,
        bits: 8,
        fields: 3,
        k: 2,
        stride: 2,
        normalize: false,
        fingerprint: FP_CTR,
        downsample_rate: 1.0,
    };
    let n = 1 + 256 + 256 * 3 * 2;
    Arc::new(Model::new(header, weights(n, -1.3)).unwrap())
}

fn experiment_scorer(mode: Mode, share: f64, loaded: bool) -> Scorer {
    Scorer::with_experiments(
        plan(),
        vec![
            ("ctr".into(), ffm_ctr(), "3".into()),
            ("cvr".into(), lr_cvr(FP_CVR), "1".into()),
        ],
        10,
        vec![ExperimentSpec {
            model: "ctr".into(),
            routing: Routing {
                experiment: "e1".into(),
                mode,
                key: "user_id".into(),
                salt: "s".into(),
                share,
            },
            treatment: loaded.then(|| (ffm_ctr_treatment(), "7".into())),
        }],
    )
    .unwrap()
}

fn user_request(user: Option<&str>) -> Vec<u8> {
    let mut context = std::collections::BTreeMap::from([
        ("app_id".to_string(), "com.game".to_string()),
        ("ts".to_string(), "3700".to_string()),
    ]);
    if let Some(user) = user {
        context.insert("user_id".into(), user.into());
    }
    ScoreRequest {
        request_id: "r1".into(),
        context,
        candidates: vec![
            candidate("a", &[("campaign_id", "c1")]),
            candidate("b", &[("campaign_id", "c2")]),
        ],
        models: vec!["cvr".into(), "ctr".into()],
    }
    .encode_to_vec()
}

fn versions(response: &[u8]) -> (Vec<(String, String)>, Vec<Vec<f32>>) {
    let out = ScoreResponse::decode(response).unwrap();
    (
        out.models
            .into_iter()
            .map(|m| (m.name, m.version))
            .collect(),
        out.candidates.into_iter().map(|c| c.scores).collect(),
    )
}

#[test]
fn experiment_routes_each_request_to_the_arm_its_key_assigns() {
    let s = experiment_scorer(Mode::Split, 0.5, true);
    let plain = scorer(10);
    let only_treatment = Scorer::new(
        plan(),
        vec![
            ("ctr".into(), ffm_ctr_treatment(), "7".into()),
            ("cvr".into(), lr_cvr(FP_CVR), "1".into()),
        ],
        10,
    )
    .unwrap();
    assert_eq!(
        s.experiments(),
        [("ctr".into(), "e1".into(), Some("7".into()))]
    );
    let mut seen = [0usize; 3];
    for i in 0..200 {
        let user = format!("user-{i}");
        let request = user_request(Some(&user));
        let (response, count, routing) = s
            .score_request_unless_over(&request, None, usize::MAX)
            .unwrap();
        assert_eq!(count, 2);
        let treated = bucket("s", &user) < 0.5;
        let (names, scores) = versions(&response.unwrap());
        let want_version = if treated { "7" } else { "3" };
        assert_eq!(
            names,
            [
                ("cvr".into(), "1".into()),
                ("ctr".into(), want_version.into())
            ]
        );
        let reference = if treated { &only_treatment } else { &plain };
        let (_, want) = versions(&reference.score_request(&request, None).unwrap());
        assert_eq!(scores, want);
        assert_eq!(routing, if treated { 2 } else { 1 });
        seen[usize::from(treated)] += 1;
        // The stream path routes the same way.
        let answer = s.answer(&request, None, usize::MAX, usize::MAX);
        assert_eq!(answer.routing, routing);
        seen[2] += 1;
    }
    assert!(seen[0] > 60 && seen[1] > 60, "{seen:?}");
    // No key: control, counted as such.
    let (response, _, routing) = s
        .score_request_unless_over(&user_request(None), None, usize::MAX)
        .unwrap();
    assert_eq!(routing, ArmCode::KeyMissing as u64);
    assert_eq!(versions(&response.unwrap()).0[1].1, "3");
    // A request not asking for the routed model has routing 0.
    let only_cvr = request(&["cvr"], vec![candidate("a", &[("campaign_id", "x")])]);
    assert_eq!(
        s.score_request_unless_over(&only_cvr, None, usize::MAX)
            .unwrap()
            .2,
        0
    );
}

#[test]
fn shadow_answers_with_control_and_scores_the_treatment_on_request() {
    let s = experiment_scorer(Mode::Shadow, 0.5, true);
    let plain = scorer(10);
    let mut shadowed = 0;
    for i in 0..100 {
        let user = format!("user-{i}");
        let request = user_request(Some(&user));
        let (response, _, routing) = s
            .score_request_unless_over(&request, None, usize::MAX)
            .unwrap();
        // The bidder sees exactly control.
        assert_eq!(
            response.unwrap(),
            plain.score_request(&request, None).unwrap()
        );
        let shadow = s.score_shadow(&request, None).unwrap();
        if bucket("s", &user) < 0.5 {
            shadowed += 1;
            assert_eq!(routing, ArmCode::Shadowed as u64);
            let (names, scores) = versions(&shadow.unwrap());
            assert_eq!(names, [("ctr".into(), "7".into())]);
            let t = ffm_ctr_treatment();
            let idx = tokens(
                1,
                8,
                &[
                    "app_id=com.game",
                    "campaign_id=c1",
                    "app_campaign=com.game^c1",
                ],
            );
            assert_eq!(
                scores[0],
                [t.predict_row(&[0, 1, 2], &idx, &[1.0, 1.0, 1.0])]
            );
        } else {
            assert_eq!(routing, ArmCode::Control as u64);
            assert!(shadow.is_none());
        }
    }
    assert!(shadowed > 20);
}

#[test]
fn a_degraded_experiment_sends_everything_to_control() {
    let s = experiment_scorer(Mode::Split, 0.99, false);
    assert_eq!(s.experiments(), [("ctr".into(), "e1".into(), None)]);
    let plain = scorer(10);
    for i in 0..50 {
        let request = user_request(Some(&format!("user-{i}")));
        let (response, _, routing) = s
            .score_request_unless_over(&request, None, usize::MAX)
            .unwrap();
        assert_eq!(
            response.unwrap(),
            plain.score_request(&request, None).unwrap()
        );
        assert_eq!(routing, ArmCode::Control as u64);
        assert!(s.score_shadow(&request, None).unwrap().is_none());
    }
}

#[test]
fn experiments_are_checked_like_served_models() {
    let spec = |model: &str, treatment: Arc<Model>| ExperimentSpec {
        model: model.into(),
        routing: Routing {
            experiment: "e".into(),
            mode: Mode::Split,
            key: "user_id".into(),
            salt: "s".into(),
            share: 0.5,
        },
        treatment: Some((treatment, "9".into())),
    };
    let models = || vec![("ctr".to_string(), ffm_ctr(), "3".to_string())];
    let wrong_fp =
        Scorer::with_experiments(plan(), models(), 10, vec![spec("ctr", lr_cvr(FP_CTR))]);
    assert!(matches!(wrong_fp, Err(Error::InvalidArgument(m)) if m.contains("bits")));
    let not_served =
        Scorer::with_experiments(plan(), models(), 10, vec![spec("cvr", lr_cvr(FP_CVR))]);
    assert!(matches!(not_served, Err(Error::InvalidArgument(m)) if m.contains("not served")));
    let twice = Scorer::with_experiments(
        plan(),
        models(),
        10,
        vec![
            spec("ctr", ffm_ctr_treatment()),
            spec("ctr", ffm_ctr_treatment()),
        ],
    );
    assert!(matches!(twice, Err(Error::InvalidArgument(m)) if m.contains("two experiments")));
}
