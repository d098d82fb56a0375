//! Parsing the `value` of client events into commands and observed results.
//!
//! `value` is parsed in the same pass as the rest of its line into [`Fields`], a struct
//! of optional borrowed fields covering every shape in docs/history.md's table, so no
//! `serde_json::Value` tree is built per event. Extra fields are ignored, as the format
//! allows. When a line fails to parse, the history reader's slow path finds the field
//! to blame (see [`crate::history`]).

use crate::load::event_parts::CowStr;
use crate::model::{Accounts, Cmd, FKind};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::fmt;

/// What is wrong with a field of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldErr {
    pub field: String,
    pub message: String,
}

impl FieldErr {
    pub fn new(field: &str, message: impl Into<String>) -> FieldErr {
        FieldErr {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Every field any `value` shape may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Fields<'a> {
    #[serde(borrow)]
    pub from: Option<CowStr<'a>>,
    #[serde(borrow)]
    pub to: Option<CowStr<'a>>,
    pub amount: Option<i64>,
    pub from_balance: Option<i64>,
    pub to_balance: Option<i64>,
    #[serde(borrow)]
    pub account: Option<CowStr<'a>>,
    pub balance: Option<i64>,
    #[serde(borrow)]
    pub error: Option<ErrText<'a>>,
    #[serde(borrow)]
    pub balances: Option<Balances<'a>>,
}

/// A fail's `error`, as its JSON text (it may be any JSON; only the text matters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrText<'a>(pub &'a str);

impl<'de: 'a, 'a> Deserialize<'de> for ErrText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| ErrText(r.get()))
    }
}

/// A `read_all` answer: account name to balance, in file order.
#[derive(Debug, Default)]
pub(crate) struct Balances<'a>(pub Vec<(CowStr<'a>, i64)>);

impl<'de: 'a, 'a> Deserialize<'de> for Balances<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de> Visitor<'de> for V<'de> {
            type Value = Balances<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of account balances")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Balances<'de>, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<CowStr<'de>, i64>()? {
                    out.push((k, v));
                }
                Ok(Balances(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The shape `value` had.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    #[default]
    Null,
    Object,
    /// Anything else (nemesis values may be strings or arrays).
    Other,
}

/// `value` as the checks read it: the fields of an object, parsed in the same pass as
/// the rest of the line; any other JSON is skipped (nemesis values are free-form).
#[derive(Debug, Default)]
pub(crate) struct ValueFields<'a> {
    pub fields: Fields<'a>,
    pub shape: Shape,
}

impl<'de: 'a, 'a> Deserialize<'de> for ValueFields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        fn other<'a>() -> ValueFields<'a> {
            ValueFields {
                fields: Fields::default(),
                shape: Shape::Other,
            }
        }
        impl<'de> Visitor<'de> for V<'de> {
            type Value = ValueFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<ValueFields<'de>, M::Error> {
                Ok(ValueFields {
                    fields: Fields::deserialize(MapAccessDeserializer::new(map))?,
                    shape: Shape::Object,
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<ValueFields<'de>, E> {
                Ok(ValueFields::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<ValueFields<'de>, E> {
                Ok(ValueFields::default())
            }
            fn visit_seq<S: SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<ValueFields<'de>, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(other())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<ValueFields<'de>, E> {
                Ok(other())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ValueFields<'de>, E> {
                Ok(other())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ValueFields<'de>, E> {
                Ok(other())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ValueFields<'de>, E> {
                Ok(other())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ValueFields<'de>, E> {
                Ok(other())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The command a client event names.
pub(crate) fn command(f: FKind, v: &Fields<'_>, accounts: &mut Accounts) -> Result<Cmd, FieldErr> {
    match f {
        FKind::Transfer => {
            let from = required(&v.from, "value.from")?;
            let to = required(&v.to, "value.to")?;
            let amount = v
                .amount
                .ok_or_else(|| FieldErr::new("value.amount", "missing"))?;
            Ok(Cmd::Transfer {
                from: accounts.intern(from),
                to: accounts.intern(to),
                amount,
            })
        }
        FKind::Read => Ok(Cmd::Read {
            account: accounts.intern(required(&v.account, "value.account")?),
        }),
        FKind::ReadAll => Ok(Cmd::ReadAll),
        FKind::Other => Ok(Cmd::Other),
    }
}

fn required<'v>(s: &'v Option<CowStr<'_>>, field: &str) -> Result<&'v str, FieldErr> {
    s.as_deref().ok_or_else(|| FieldErr::new(field, "missing"))
}

/// Whether a fail's `error` says the source account was short.
pub(crate) fn is_insufficient(error: Option<ErrText<'_>>) -> bool {
    error.is_some_and(|e| e.0 == "\"insufficient-funds\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ValueFields<'_>, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn parses_transfer_and_read_all() {
        let text =
            r#"{"from":"A","to":"B","amount":3,"from_balance":7,"to_balance":13,"extra":[1]}"#;
        let v = parse(text).unwrap();
        let mut accts = Accounts::declared(&["A".into(), "B".into()]);
        let cmd = command(FKind::Transfer, &v.fields, &mut accts).unwrap();
        assert_eq!(
            cmd,
            Cmd::Transfer {
                from: 0,
                to: 1,
                amount: 3
            }
        );
        assert_eq!(
            (v.fields.from_balance, v.fields.to_balance),
            (Some(7), Some(13))
        );
        let v = parse(r#"{"balances":{"A":10,"B":10}}"#).unwrap();
        assert_eq!(v.fields.balances.unwrap().0.len(), 2);
    }

    #[test]
    fn other_shapes_are_skipped() {
        assert_eq!(parse("null").unwrap().shape, Shape::Null);
        assert_eq!(
            parse(r#"[["n1"],["n2",{"x":1}]]"#).unwrap().shape,
            Shape::Other
        );
        assert_eq!(parse(r#""n3""#).unwrap().shape, Shape::Other);
    }

    #[test]
    fn missing_fields_are_named() {
        let v = parse(r#"{"from":"A","amount":3}"#).unwrap();
        let e = command(FKind::Transfer, &v.fields, &mut Accounts::default()).unwrap_err();
        assert_eq!(e, FieldErr::new("value.to", "missing"));
    }
}
