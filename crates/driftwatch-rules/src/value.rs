//! Field values and the interface the agent implements to supply them: [`FieldSource`].
//!
//! Values are borrowed ([`Value`]) so evaluating rules allocates nothing per event: a source
//! returns slices of its own data, or writes computed text into the caller's reusable
//! [`Scratch`] and returns a slice of that.

use crate::fields::{lookup, ArgKind, EventType, FieldId, FieldType};
use std::collections::HashMap;

/// The `[…]` argument of a field, prepared at compile time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldArg {
    /// No argument.
    None,
    /// `proc.aname[2]`.
    Index(u32),
}

/// A field value for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a [u8]),
    U64(u64),
    I64(i64),
    Bool(bool),
    /// Several strings (an ancestor field without index), stored in a [`Scratch`].
    StrList(&'a Scratch),
    /// Several numbers (an ancestor field without index), stored in a [`Scratch`].
    NumList(&'a Scratch),
}

impl Value<'_> {
    /// The value as a number, for numeric comparisons.
    #[must_use]
    pub fn as_num(&self) -> Option<i128> {
        match *self {
            Value::U64(v) => Some(i128::from(v)),
            Value::I64(v) => Some(i128::from(v)),
            _ => None,
        }
    }
}

/// Reusable buffers a [`FieldSource`] may write computed values into. Cleared before each use;
/// capacity is kept, so after the first events no allocation happens.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scratch {
    /// Bytes of a computed string, or the concatenated items of a string list.
    pub bytes: Vec<u8>,
    /// End offsets in `bytes` of each string-list item.
    pub ends: Vec<usize>,
    /// Items of a number list.
    pub nums: Vec<u64>,
}

impl Scratch {
    /// Empties the buffers, keeping their capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.nums.clear();
    }

    /// Appends one item to a string list.
    pub fn push_str(&mut self, item: &[u8]) {
        self.bytes.extend_from_slice(item);
        self.ends.push(self.bytes.len());
    }

    /// The items of a string list.
    pub fn strs(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let s = self.bytes.get(start..end).unwrap_or_default();
            start = end;
            s
        })
    }
}

/// Supplies field values for one event. The agent implements it over its own event structs;
/// [`MapSource`] implements it over a map, for tests and `driftwatch rules test`.
pub trait FieldSource {
    /// The event's type (`evt.type`).
    fn event_type(&self) -> EventType;

    /// The value of `field` (with its argument) for this event, or `None` when the event has no
    /// value for it. `scratch` is cleared by the caller and may hold a computed value.
    fn get<'a>(
        &'a self,
        field: FieldId,
        arg: &FieldArg,
        scratch: &'a mut Scratch,
    ) -> Option<Value<'a>>;
}

/// An owned field value, as stored by [`MapSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedValue {
    Str(Vec<u8>),
    U64(u64),
    I64(i64),
    Bool(bool),
    StrList(Vec<Vec<u8>>),
    NumList(Vec<u64>),
}

/// Errors building a [`MapSource`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapSourceError {
    #[error("unknown field '{name}'")]
    UnknownField { name: String },
    #[error("field '{name}' does not take an argument")]
    UnexpectedArg { name: String },
    #[error("field '{name}' needs an index argument, e.g. {name}[1]")]
    MissingArg { name: String },
    #[error("invalid argument '{arg}' for field '{name}': expected a non-negative index")]
    BadArg { name: String, arg: String },
    #[error("invalid value for field '{name}' ({ty}): {value}")]
    BadValue {
        name: String,
        ty: &'static str,
        value: String,
    },
    #[error(
        "unknown event type '{value}' (driftwatch produces execve, execveat, mmap, mprotect, the file and the network syscalls: see evt.type in `driftwatch rules fields`)"
    )]
    BadEventType { value: String },
    #[error("the event has no evt.type")]
    MissingEventType,
}

/// Parses `name` or `name[arg]` into a field and its argument.
pub fn parse_field_ref(text: &str) -> Result<(FieldId, FieldArg), MapSourceError> {
    let (name, arg) = match text.split_once('[') {
        Some((n, rest)) => (n, Some(rest.strip_suffix(']').unwrap_or(rest))),
        None => (text, None),
    };
    let id = lookup(name).ok_or_else(|| MapSourceError::UnknownField {
        name: name.to_string(),
    })?;
    let arg = match (id.def().arg, arg) {
        (ArgKind::None, None) | (ArgKind::IndexOrAll, None) => FieldArg::None,
        (ArgKind::None, Some(_)) => {
            return Err(MapSourceError::UnexpectedArg {
                name: name.to_string(),
            })
        }
        (ArgKind::Index, None) => {
            return Err(MapSourceError::MissingArg {
                name: name.to_string(),
            })
        }
        (ArgKind::Index | ArgKind::IndexOrAll, Some(a)) => {
            FieldArg::Index(a.parse().map_err(|_| MapSourceError::BadArg {
                name: name.to_string(),
                arg: a.to_string(),
            })?)
        }
    };
    Ok((id, arg))
}

/// A [`FieldSource`] backed by a map from field (with argument) to value.
///
/// Ancestor fields fall back as Falco defines them: `proc.aname[0]` is `proc.name`,
/// `proc.aname[1]` is `proc.pname`, and `proc.aname` without index lists `proc.aname[1]`,
/// `proc.aname[2]`… (the same for `proc.apid` with `proc.pid`/`proc.ppid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSource {
    event_type: EventType,
    values: HashMap<(FieldId, FieldArg), OwnedValue>,
}

impl MapSource {
    /// An event of type `event_type` with no other field values.
    #[must_use]
    pub fn new(event_type: EventType) -> MapSource {
        MapSource {
            event_type,
            values: HashMap::new(),
        }
    }

    /// Sets a field (`name` or `name[arg]`) from text, converted to the field's type.
    pub fn set(&mut self, field: &str, value: &str) -> Result<&mut Self, MapSourceError> {
        let (id, arg) = parse_field_ref(field)?;
        let def = id.def();
        let bad = || MapSourceError::BadValue {
            name: field.to_string(),
            ty: def.ty.as_str(),
            value: value.to_string(),
        };
        if def.name == "evt.type" {
            self.event_type =
                EventType::parse(value.as_bytes()).ok_or_else(|| MapSourceError::BadEventType {
                    value: value.to_string(),
                })?;
            return Ok(self);
        }
        let v = match def.ty {
            FieldType::String | FieldType::Path => OwnedValue::Str(value.as_bytes().to_vec()),
            FieldType::IpAddr | FieldType::IpNet => OwnedValue::Str(
                value
                    .trim()
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| bad())?
                    .to_string()
                    .into_bytes(),
            ),
            FieldType::U64 | FieldType::AbsTime => {
                OwnedValue::U64(parse_u64(value).ok_or_else(bad)?)
            }
            FieldType::I64 => OwnedValue::I64(value.trim().parse().map_err(|_| bad())?),
            FieldType::Bool => OwnedValue::Bool(match value.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(bad()),
            }),
        };
        self.values.insert((id, arg), v);
        Ok(self)
    }

    /// Sets a field to a list of values (ancestor fields without index, and fields that are
    /// either of two values, `fd.ip`).
    pub fn set_list(&mut self, field: &str, items: &[&str]) -> Result<&mut Self, MapSourceError> {
        let (id, arg) = parse_field_ref(field)?;
        let def = id.def();
        if !(def.either || def.arg == ArgKind::IndexOrAll) || arg != FieldArg::None {
            return Err(MapSourceError::BadValue {
                name: field.to_string(),
                ty: def.ty.as_str(),
                value: format!("{items:?}"),
            });
        }
        let v = if def.ty.is_numeric() {
            let mut nums = Vec::new();
            for i in items {
                nums.push(parse_u64(i).ok_or_else(|| MapSourceError::BadValue {
                    name: field.to_string(),
                    ty: def.ty.as_str(),
                    value: (*i).to_string(),
                })?);
            }
            OwnedValue::NumList(nums)
        } else if def.ty.is_ip() {
            let mut addrs = Vec::new();
            for i in items {
                let a =
                    i.trim()
                        .parse::<std::net::IpAddr>()
                        .map_err(|_| MapSourceError::BadValue {
                            name: field.to_string(),
                            ty: def.ty.as_str(),
                            value: (*i).to_string(),
                        })?;
                addrs.push(a.to_string().into_bytes());
            }
            OwnedValue::StrList(addrs)
        } else {
            OwnedValue::StrList(items.iter().map(|s| s.as_bytes().to_vec()).collect())
        };
        self.values.insert((id, arg), v);
        Ok(self)
    }

    /// Builds a source from `(field, value)` pairs; `evt.type` must be among them.
    pub fn from_pairs<'p>(
        pairs: impl IntoIterator<Item = (&'p str, &'p str)>,
    ) -> Result<MapSource, MapSourceError> {
        let mut src = MapSource::new(EventType::Execve);
        let mut typed = false;
        for (k, v) in pairs {
            typed |= k == "evt.type";
            src.set(k, v)?;
        }
        if !typed {
            return Err(MapSourceError::MissingEventType);
        }
        Ok(src)
    }

    /// Index of the event type in [`EventType::ALL`].
    #[must_use]
    pub fn event_type_index(&self) -> usize {
        self.event_type.index()
    }

    fn owned(&self, id: FieldId, arg: &FieldArg) -> Option<&OwnedValue> {
        self.values.get(&(id, arg.clone()))
    }

    fn by_name(&self, name: &str, arg: FieldArg) -> Option<&OwnedValue> {
        self.owned(lookup(name)?, &arg)
    }

    /// Ancestor `n` of an ancestor field (`proc.aname`/`proc.apid`).
    fn ancestor(&self, id: FieldId, n: u32) -> Option<&OwnedValue> {
        if let Some(v) = self.owned(id, &FieldArg::Index(n)) {
            return Some(v);
        }
        let (own, parent) = match id.name() {
            "proc.aname" => ("proc.name", "proc.pname"),
            "proc.apid" => ("proc.pid", "proc.ppid"),
            _ => return None,
        };
        match n {
            0 => self.by_name(own, FieldArg::None),
            1 => self.by_name(parent, FieldArg::None),
            _ => None,
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn borrow(v: &OwnedValue) -> Option<Value<'_>> {
    Some(match v {
        OwnedValue::Str(s) => Value::Str(s),
        OwnedValue::U64(n) => Value::U64(*n),
        OwnedValue::I64(n) => Value::I64(*n),
        OwnedValue::Bool(b) => Value::Bool(*b),
        OwnedValue::StrList(_) | OwnedValue::NumList(_) => return None,
    })
}

impl FieldSource for MapSource {
    fn event_type(&self) -> EventType {
        self.event_type
    }

    fn get<'a>(
        &'a self,
        field: FieldId,
        arg: &FieldArg,
        scratch: &'a mut Scratch,
    ) -> Option<Value<'a>> {
        let def = field.def();
        if def.name == "evt.type" {
            return Some(Value::Str(self.event_type.as_str().as_bytes()));
        }
        if def.either {
            scratch.clear();
            return match self.owned(field, arg)? {
                OwnedValue::StrList(l) => {
                    l.iter().for_each(|s| scratch.push_str(s));
                    Some(Value::StrList(scratch))
                }
                OwnedValue::NumList(l) => {
                    scratch.nums.extend_from_slice(l);
                    Some(Value::NumList(scratch))
                }
                v => borrow(v),
            };
        }
        if def.arg != ArgKind::IndexOrAll {
            return self.owned(field, arg).and_then(borrow);
        }
        match arg {
            FieldArg::Index(n) => self
                .ancestor(field, *n)
                .and_then(borrow)
                .or_else(|| self.list_index(field, *n)),
            FieldArg::None => {
                scratch.clear();
                match self.owned(field, &FieldArg::None) {
                    Some(OwnedValue::StrList(l)) => {
                        l.iter().for_each(|s| scratch.push_str(s));
                        return Some(Value::StrList(scratch));
                    }
                    Some(OwnedValue::NumList(l)) => {
                        scratch.nums.extend_from_slice(l);
                        return Some(Value::NumList(scratch));
                    }
                    _ => {}
                }
                // no list given: the indexed ancestors from 1 up
                let mut n = 1;
                let numeric = def.ty.is_numeric();
                while let Some(v) = self.ancestor(field, n) {
                    match v {
                        OwnedValue::Str(s) => scratch.push_str(s),
                        OwnedValue::U64(x) => scratch.nums.push(*x),
                        _ => break,
                    }
                    n += 1;
                }
                if numeric {
                    (!scratch.nums.is_empty()).then_some(Value::NumList(scratch))
                } else {
                    (!scratch.ends.is_empty()).then_some(Value::StrList(scratch))
                }
            }
        }
    }
}

impl MapSource {
    fn list_index(&self, field: FieldId, n: u32) -> Option<Value<'_>> {
        let i = usize::try_from(n.checked_sub(1)?).ok()?;
        match self.owned(field, &FieldArg::None)? {
            OwnedValue::StrList(l) => l.get(i).map(|s| Value::Str(s)),
            OwnedValue::NumList(l) => l.get(i).map(|x| Value::U64(*x)),
            _ => None,
        }
    }
}
