//! Plan tests across modules: compile errors, and the two paths giving identical triples.

use std::collections::HashMap;

use super::*;
use crate::error::Error;
use crate::hash;

const PLAN: &str = r#"{
  "version": 1,
  "raw": [
    {"name": "ts", "type": "int", "source": "context", "default": 0},
    {"name": "app_id", "type": "str", "source": "context", "default": ""},
    {"name": "bid_floor", "type": "float", "source": "context", "default": null},
    {"name": "ad_category", "type": "str", "source": "candidate", "default": "none"},
    {"name": "bid_price", "type": "float", "source": "candidate", "default": 0.5},
    {"name": "os_family", "type": "str", "source": "derived_python", "default": ""}
  ],
  "derived": [
    {"name": "hour", "op": "hour_of_day", "inputs": ["ts"], "params": {}},
    {"name": "floor_bucket", "op": "bucketize", "inputs": ["bid_floor"], "params": {"edges": [0.1, 0.5, 1.0]}},
    {"name": "price_log", "op": "log_bucket", "inputs": ["bid_price"], "params": {"base": 2.0}},
    {"name": "app_lc", "op": "lower", "inputs": ["app_id"], "params": {}},
    {"name": "category_media", "op": "cross", "inputs": ["ad_category", "app_lc", "hour"], "params": {}}
  ],
  "models": {
    "ctr": {"seed": 1, "bits": 20, "fields": [
      {"feature": "app_lc", "kind": "categorical"},
      {"feature": "bid_floor", "kind": "numeric"},
      {"feature": "category_media", "kind": "categorical"},
      {"feature": "price_log", "kind": "categorical"},
      {"feature": "floor_bucket", "kind": "categorical"},
      {"feature": "os_family", "kind": "categorical"}
    ], "fingerprint": "ab"},
    "cvr": {"seed": 2, "bits": 10, "fields": [
      {"feature": "hour", "kind": "categorical"},
      {"feature": "bid_price", "kind": "numeric"}
    ]}
  }
}"#;

struct Cand(String, HashMap<String, String>);

impl Lookup for Cand {
    fn get(&self, key: &str) -> Option<&str> {
        self.1.get(key).map(String::as_str)
    }
}

impl CandidateInput for Cand {
    fn id(&self) -> &str {
        &self.0
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

type Triples = (Vec<u32>, Vec<u32>, Vec<f32>);

fn serve(
    plan: &FeaturePlan,
    model: &str,
    ctx: &HashMap<String, String>,
    cands: &[Cand],
    py: &PythonValues,
) -> Result<Vec<Triples>, Error> {
    let m = plan.model(model)?;
    let mut out = Vec::new();
    let mut scratch = plan.request_scratch();
    plan.tokenize_request(&[m], ctx, cands, Some(py), &mut scratch, |_, _, f, i, v| {
        out.push((f.to_vec(), i.to_vec(), v.to_vec()));
    })?;
    Ok(out)
}

#[test]
fn token_text_and_hash_follow_the_contract() {
    let plan = FeaturePlan::from_json(PLAN).unwrap();
    let ctx = map(&[("ts", "7200"), ("app_id", "Com.App"), ("bid_floor", "0.5")]);
    let cands = [Cand(
        "c1".into(),
        map(&[("ad_category", "games"), ("bid_price", "3")]),
    )];
    let py = PythonValues::from([("os_family".to_owned(), vec![Some("apple".to_owned())])]);
    let rows = serve(&plan, "ctr", &ctx, &cands, &py).unwrap();
    let b = |t: &str| hash::bucket(t.as_bytes(), 1, 20);
    assert_eq!(rows[0].0, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(
        rows[0].1,
        vec![
            b("app_lc=com.app"),
            b("bid_floor"),
            b("category_media=games^com.app^2"),
            b("price_log=2"),
            b("floor_bucket=2"),
            b("os_family=apple")
        ]
    );
    assert_eq!(rows[0].2, vec![1.0, 0.5, 1.0, 1.0, 1.0, 1.0]);
}

#[test]
fn serving_equals_training() {
    let plan = FeaturePlan::from_json(PLAN).unwrap();
    let ctx = map(&[("ts", "-3599"), ("app_id", "ÉCOLE"), ("bid_floor", "2.25")]);
    let cands = [
        Cand(
            "a".into(),
            map(&[("ad_category", "x"), ("bid_price", "0.1")]),
        ),
        Cand("b".into(), map(&[])),
    ];
    let py = PythonValues::from([(
        "os_family".to_owned(),
        vec![Some("android".to_owned()), None],
    )]);
    for model in ["ctr", "cvr"] {
        let served = serve(&plan, model, &ctx, &cands, &py).unwrap();
        let ts = [-3599i64, -3599];
        let floor = [2.25f64, 2.25];
        let price = [0.1f64, 0.0];
        let price_valid = [true, false];
        let app = "ÉCOLEÉCOLE".as_bytes();
        let app_offsets = [0i64, "ÉCOLE".len() as i64, app.len() as i64];
        let cat = b"x";
        let cat_offsets = [0i32, 1, 1];
        let cat_valid = [true, false];
        let osf = [Some("android".to_owned()), None];
        let columns: HashMap<String, Column> = [
            (
                "ts",
                Column {
                    data: ColumnData::Int(&ts),
                    valid: None,
                },
            ),
            (
                "bid_floor",
                Column {
                    data: ColumnData::Float(&floor),
                    valid: None,
                },
            ),
            (
                "bid_price",
                Column {
                    data: ColumnData::Float(&price),
                    valid: Some(&price_valid),
                },
            ),
            (
                "app_id",
                Column {
                    data: ColumnData::Str {
                        offsets: Offsets::I64(&app_offsets),
                        data: app,
                    },
                    valid: None,
                },
            ),
            (
                "ad_category",
                Column {
                    data: ColumnData::Str {
                        offsets: Offsets::I32(&cat_offsets),
                        data: cat,
                    },
                    valid: Some(&cat_valid),
                },
            ),
            (
                "os_family",
                Column {
                    data: ColumnData::Text(&osf),
                    valid: None,
                },
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let csr = plan.tokenize_columns(model, &columns, 2).unwrap();
        for (row, (f, i, v)) in served.iter().enumerate() {
            let span = csr.indptr[row] as usize..csr.indptr[row + 1] as usize;
            assert_eq!(&csr.fields[span.clone()], f.as_slice(), "{model} row {row}");
            assert_eq!(
                &csr.indices[span.clone()],
                i.as_slice(),
                "{model} row {row}"
            );
            assert_eq!(&csr.values[span], v.as_slice(), "{model} row {row}");
        }
    }
}

#[test]
fn request_errors_name_model_candidate_and_feature() {
    let plan = FeaturePlan::from_json(PLAN).unwrap();
    let py = PythonValues::from([("os_family".to_owned(), vec![None])]);
    let cands = [Cand("c9".into(), map(&[("bid_price", "cheap")]))];
    let ctx = map(&[("bid_floor", "1")]);
    let err = serve(&plan, "ctr", &ctx, &cands, &py)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        r#"model ctr, candidate "c9" (#0), feature bid_price: "cheap" does not parse as float"#
    );
    let err = serve(&plan, "ctr", &map(&[]), &cands, &py)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "model ctr, context, feature bid_floor: missing required value"
    );
    let err = serve(&plan, "ctr", &ctx, &cands, &PythonValues::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("os_family is a Python property"), "{err}");
    assert!(matches!(
        serve(&plan, "nope", &ctx, &cands, &py),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn column_errors_name_column_and_row() {
    let plan = FeaturePlan::from_json(PLAN).unwrap();
    let floor = [1.0, f64::NAN];
    let columns: HashMap<String, Column> = [(
        "bid_floor".to_owned(),
        Column {
            data: ColumnData::Float(&floor),
            valid: None,
        },
    )]
    .into();
    let err = plan
        .tokenize_columns("ctr", &columns, 2)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("column ") && err.contains("is missing"),
        "{err}"
    );

    let ts = [0i64, 0];
    let valid = [true, false];
    let columns: HashMap<String, Column> = [
        (
            "ts".to_owned(),
            Column {
                data: ColumnData::Int(&ts),
                valid: None,
            },
        ),
        (
            "bid_price".to_owned(),
            Column {
                data: ColumnData::Float(&floor),
                valid: None,
            },
        ),
    ]
    .into();
    let err = plan
        .tokenize_columns("cvr", &columns, 2)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        r#"column bid_price, row 2: "NaN" is not a finite float"#
    );
    let columns: HashMap<String, Column> = [
        (
            "ts".to_owned(),
            Column {
                data: ColumnData::Float(&floor),
                valid: None,
            },
        ),
        (
            "bid_price".to_owned(),
            Column {
                data: ColumnData::Float(&floor),
                valid: Some(&valid),
            },
        ),
    ]
    .into();
    let err = plan
        .tokenize_columns("cvr", &columns, 2)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "column ts: is float, the feature is int");
}

#[test]
fn bad_plans_are_refused() {
    let cases = [
        (
            PLAN.replace(r#""version": 1"#, r#""version": 9"#),
            "version 9",
        ),
        (
            PLAN.replace(r#""op": "lower""#, r#""op": "upper""#),
            "unknown op",
        ),
        (
            PLAN.replace(r#""edges": [0.1, 0.5, 1.0]"#, r#""edges": [0.5, 0.1]"#),
            "strictly increasing",
        ),
        (PLAN.replace(r#""base": 2.0"#, r#""base": 1.0"#), "base > 1"),
        (
            PLAN.replace(r#""inputs": ["ts"]"#, r#""inputs": ["later"]"#),
            "not defined before",
        ),
        (PLAN.replace(r#""bits": 10"#, r#""bits": 31"#), "bits"),
        (
            PLAN.replace(
                r#"{"feature": "hour", "kind": "categorical"}"#,
                r#"{"feature": "app_lc", "kind": "numeric"}"#,
            ),
            "numeric field",
        ),
        (
            PLAN.replace(r#""default": "none""#, r#""default": 3"#),
            "not a str",
        ),
        ("{".to_owned(), "feature plan"),
    ];
    for (json, expected) in cases {
        let err = FeaturePlan::from_json(&json).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
    }
}

#[test]
fn numeric_values_beyond_f32_are_refused_naming_feature_and_candidate() {
    let plan = FeaturePlan::from_json(PLAN).unwrap();
    let ctx = map(&[]);
    for text in ["1e300", "-1e39"] {
        let cands = [
            Cand("a".into(), map(&[("bid_price", "2.5")])),
            Cand("b".into(), map(&[("bid_price", text)])),
        ];
        let err = serve(&plan, "cvr", &ctx, &cands, &PythonValues::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bid_price") && err.contains("float32 range"),
            "{err}"
        );
        assert!(
            err.contains("candidate 1") || err.contains("\"b\""),
            "{err}"
        );
    }
}
