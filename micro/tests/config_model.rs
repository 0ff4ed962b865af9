//! The config's merge against a reference model (RELIABILITY.md R26's
//! property test): random layers from sources of distinct names, loaded
//! through the whole pipeline (source, layer, merge, snapshot), must give
//! the model's values, and every leaf must name the source the model says
//! set it. The model is Go Micro's documented rule on plain JSON: later
//! wins, objects merge, arrays and scalars replace, and a later object
//! does not replace an earlier non-empty scalar.

use std::collections::BTreeMap;

use micro::BoxFuture;
use micro::config::{Config, Layer, Source, SourceError};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// A source holding one fixed document.
struct Fixed {
    name: String,
    doc: Value,
}

impl Source for Fixed {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read(&self) -> BoxFuture<'_, Result<Layer, SourceError>> {
        Box::pin(async move { Layer::from_json(&self.name, self.doc.clone()) })
    }
}

/// The model: a value and, per leaf, the layer that set it.
#[derive(Clone, Debug)]
enum Model {
    Leaf(Value, usize),
    Object(BTreeMap<String, Model>),
}

fn model_of(value: &Value, layer: usize) -> Model {
    match value {
        Value::Object(map) => Model::Object(map.iter().map(|(k, v)| (k.clone(), model_of(v, layer))).collect()),
        other => Model::Leaf(other.clone(), layer),
    }
}

fn empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(_) => false,
    }
}

fn over(base: Model, later: Model) -> Model {
    match (base, later) {
        (Model::Object(mut into), Model::Object(from)) => {
            for (k, v) in from {
                let merged = match into.remove(&k) {
                    Some(old) => over(old, v),
                    None => v,
                };
                into.insert(k, merged);
            }
            Model::Object(into)
        }
        (Model::Leaf(value, layer), Model::Object(_)) if !empty(&value) => Model::Leaf(value, layer),
        (_, later) => later,
    }
}

fn json(model: &Model) -> Value {
    match model {
        Model::Leaf(value, _) => value.clone(),
        Model::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), json(v))).collect::<Map<_, _>>()),
    }
}

fn leaves(model: &Model, path: String, out: &mut Vec<(String, usize)>) {
    match model {
        Model::Leaf(_, layer) => out.push((path, *layer)),
        Model::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(v, p, out);
            }
        }
    }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0i64..3).prop_map(Value::from),
        prop_oneof![Just(""), Just("x"), Just("y z")].prop_map(Value::from),
        prop::collection::vec((0i64..3).prop_map(Value::from), 0..3).prop_map(Value::Array),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 3, |inner| {
        prop::collection::btree_map(prop_oneof![Just("a"), Just("b"), Just("c")], inner, 0..3)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    })
}

fn document() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop_oneof![Just("a"), Just("b"), Just("c")], value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn merge_matches_the_model(layers in prop::collection::vec(document(), 1..5)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = runtime.block_on(async {
            let mut builder = Config::builder();
            for (i, doc) in layers.iter().enumerate() {
                builder = builder.source(Fixed { name: format!("layer{i}"), doc: doc.clone() });
            }
            builder.load().await.unwrap()
        });
        let mut model = Model::Object(BTreeMap::new());
        for (i, doc) in layers.iter().enumerate() {
            model = over(model, model_of(doc, i));
        }
        let snapshot = config.snapshot();
        prop_assert_eq!(snapshot.to_json(), json(&model));
        let mut expected = Vec::new();
        leaves(&model, String::new(), &mut expected);
        for (path, layer) in expected {
            // An empty object is no leaf for `explain`.
            if snapshot.get::<Value>(&path).is_ok_and(|v| v.as_object().is_some_and(Map::is_empty)) {
                continue;
            }
            let explained = config.explain(&path);
            prop_assert_eq!(explained.len(), 1, "{}", path);
            let want = format!("layer{layer}");
            prop_assert_eq!(&*explained[0].origin.source, want.as_str(), "{}", path);
        }
    }
}
