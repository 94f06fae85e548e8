//! History readers: canonical JSON Lines, a JSON array of the same events, and Jepsen/Maelstrom
//! EDN (`history.edn`, lin-kv `[key value]` tuples, or Knossos' single-register form).
//!
//! Owns: turning text into [`Event`]s, and naming the line or event and what is wrong.
//! Must never: panic or allocate without bound on bad input (nesting depth is limited).
//!
//! EDN rules: events whose `:process` is not an integer (the nemesis) are skipped; a history is
//! keyed when every client event's value is a `[key value]` pair (and every cas value is
//! `[key [from to]]`), otherwise it is one register whose key is `null`; an `ok` read of nil
//! means "value unknown" (Knossos) and becomes an `info` read, which constrains nothing.
//! Missing `:index` / `:time` are numbered by position.

use super::{Event, EventKind, Op};
use serde::Deserialize;
use serde_json::Value;

/// Why a history cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line, when the input has lines.
    pub line: Option<usize>,
    /// 0-based position of the event in an array, when known.
    pub event: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.event) {
            (Some(l), _) => write!(f, "line {l}: {}", self.message),
            (None, Some(e)) => write!(f, "event {e}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// Reads canonical JSON Lines (one event per line; blank lines are skipped).
pub fn parse_jsonl(text: &str) -> Result<Vec<Event>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: Event = serde_json::from_str(line).map_err(|e| ParseError {
            line: Some(i + 1),
            event: None,
            message: format!("not a history event: {e}"),
        })?;
        out.push(e);
    }
    Ok(out)
}

/// Reads a JSON array of canonical events (the `history` of `verify_linearizability`).
pub fn parse_json_array(v: &Value) -> Result<Vec<Event>, ParseError> {
    let Value::Array(items) = v else {
        return Err(ParseError {
            line: None,
            event: None,
            message: format!(
                "history must be a JSON array of events, found {}",
                type_of(v)
            ),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            Event::deserialize(item).map_err(|e| ParseError {
                line: None,
                event: Some(i),
                message: format!("not a history event ({e}): {}", short(item)),
            })
        })
        .collect()
}

/// Reads a file's text, choosing the format by the name's extension (`.jsonl`, `.json`, `.edn`)
/// or, failing that, by its first characters.
pub fn parse_auto(text: &str, name: &str) -> Result<Vec<Event>, ParseError> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".edn") {
        return parse_edn(text);
    }
    if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        return parse_jsonl(text);
    }
    let trimmed = text.trim_start();
    if lower.ends_with(".json") || (trimmed.starts_with('[') && looks_like_json_array(trimmed)) {
        let v: Value = serde_json::from_str(text).map_err(|e| ParseError {
            line: Some(e.line()),
            event: None,
            message: format!("not a JSON array of events: {e}"),
        })?;
        return parse_json_array(&v);
    }
    if trimmed.starts_with("{\"") || trimmed.starts_with("{ \"") {
        return parse_jsonl(text);
    }
    parse_edn(text)
}

fn looks_like_json_array(t: &str) -> bool {
    let rest = t[1..].trim_start();
    rest.starts_with('{') && rest[1..].trim_start().starts_with('"') || rest.starts_with(']')
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        let mut t: String = s.chars().take(117).collect();
        t.push_str("...");
        t
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------
// EDN

#[derive(Clone, Debug, PartialEq)]
enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Kw(String),
    Sym(String),
    Seq(Vec<Edn>),
    Map(Vec<(Edn, Edn)>, usize),
}

const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            line: Some(self.line),
            event: None,
            message: message.into(),
        })
    }

    fn skip_ws(&mut self) {
        while let Some(&c) = self.s.get(self.pos) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.s.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.s.len()
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(&c) = self.s.get(self.pos) {
            if c.is_ascii_whitespace() || b",()[]{}\";".contains(&c) {
                break;
            }
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }

    fn value(&mut self, depth: usize) -> Result<Edn, ParseError> {
        if depth > MAX_DEPTH {
            return self.err("EDN nested too deeply");
        }
        self.skip_ws();
        let Some(&c) = self.s.get(self.pos) else {
            return self.err("unexpected end of input");
        };
        match c {
            b'[' | b'(' => {
                self.pos += 1;
                let close = if c == b'[' { b']' } else { b')' };
                Ok(Edn::Seq(self.items(close, depth)?))
            }
            b'{' => {
                let line = self.line;
                self.pos += 1;
                let items = self.items(b'}', depth)?;
                if items.len() % 2 != 0 {
                    return Err(ParseError {
                        line: Some(line),
                        event: None,
                        message: "map has a key without a value".into(),
                    });
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Ok(Edn::Map(pairs, line))
            }
            b'#' => {
                self.pos += 1;
                match self.s.get(self.pos) {
                    Some(b'{') => {
                        self.pos += 1;
                        Ok(Edn::Seq(self.items(b'}', depth)?))
                    }
                    Some(b'_') => {
                        self.pos += 1;
                        self.value(depth + 1)?;
                        self.value(depth + 1)
                    }
                    _ => {
                        // A tagged value (`#jepsen.independent/tuple [k v]`): keep the value.
                        let tag = self.token();
                        if tag.is_empty() {
                            return self.err("`#` not followed by a tag");
                        }
                        self.value(depth + 1)
                    }
                }
            }
            b'"' => self.string(),
            b')' | b']' | b'}' => self.err(format!("unexpected `{}`", c as char)),
            b':' => {
                self.pos += 1;
                let t = self.token();
                if t.is_empty() {
                    return self.err("empty keyword");
                }
                Ok(Edn::Kw(t.to_string()))
            }
            b'\\' => {
                self.pos += 1;
                let t = self.token();
                Ok(Edn::Str(t.to_string()))
            }
            _ => {
                let t = self.token();
                if t.is_empty() {
                    return self.err(format!("unexpected character `{}`", c as char));
                }
                Ok(match t {
                    "nil" => Edn::Nil,
                    "true" => Edn::Bool(true),
                    "false" => Edn::Bool(false),
                    _ => {
                        let num = t.trim_end_matches('N');
                        if let Ok(i) = num.parse::<i64>() {
                            Edn::Int(i)
                        } else if t.starts_with(|c: char| c.is_ascii_digit() || c == '-')
                            && t.trim_end_matches('M').parse::<f64>().is_ok()
                        {
                            Edn::Float(t.trim_end_matches('M').parse::<f64>().unwrap_or(0.0))
                        } else {
                            Edn::Sym(t.to_string())
                        }
                    }
                })
            }
        }
    }

    fn items(&mut self, close: u8, depth: usize) -> Result<Vec<Edn>, ParseError> {
        let open_line = self.line;
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            match self.s.get(self.pos) {
                None => {
                    return Err(ParseError {
                        line: Some(open_line),
                        event: None,
                        message: format!("`{}` opened here is never closed", opener(close)),
                    })
                }
                Some(&c) if c == close => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(_) => out.push(self.value(depth + 1)?),
            }
        }
    }

    fn string(&mut self) -> Result<Edn, ParseError> {
        let line = self.line;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.pos) {
                None => {
                    return Err(ParseError {
                        line: Some(line),
                        event: None,
                        message: "string is never closed".into(),
                    })
                }
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = self.s.get(self.pos + 1).copied().unwrap_or(b'\\');
                    out.push(match c {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                    self.pos += 2;
                }
                Some(&c) => {
                    if c == b'\n' {
                        self.line += 1;
                    }
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        Ok(Edn::Str(String::from_utf8_lossy(&out).into_owned()))
    }
}

fn opener(close: u8) -> char {
    match close {
        b']' => '[',
        b')' => '(',
        _ => '{',
    }
}

fn to_json(e: &Edn) -> Value {
    match e {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(i) => Value::from(*i),
        Edn::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Edn::Str(s) | Edn::Sym(s) => Value::String(s.clone()),
        Edn::Kw(k) => Value::String(format!(":{k}")),
        Edn::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Edn::Map(pairs, _) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Edn::Kw(s) | Edn::Str(s) | Edn::Sym(s) => s.clone(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

fn get<'e>(pairs: &'e [(Edn, Edn)], name: &str) -> Option<&'e Edn> {
    pairs
        .iter()
        .find(|(k, _)| matches!(k, Edn::Kw(s) if s == name))
        .map(|(_, v)| v)
}

struct Raw {
    line: usize,
    index: Option<u64>,
    time: Option<u64>,
    process: u64,
    kind: EventKind,
    f: Op,
    value: Edn,
}

/// Reads Jepsen/Maelstrom/Knossos EDN: a vector or list of operation maps, or maps one after
/// another (Jepsen's `history.edn`).
pub fn parse_edn(text: &str) -> Result<Vec<Event>, ParseError> {
    let mut r = Reader {
        s: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut forms = Vec::new();
    while !r.at_end() {
        forms.push(r.value(0)?);
    }
    let items = match forms.len() {
        1 if matches!(forms[0], Edn::Seq(_)) => match forms.pop() {
            Some(Edn::Seq(items)) => items,
            _ => Vec::new(),
        },
        _ => forms,
    };
    let mut raws = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Edn::Map(pairs, line) = item else {
            return Err(ParseError {
                line: None,
                event: Some(i),
                message: format!("expected an operation map, found {}", to_json(&item)),
            });
        };
        let err = |message: String| ParseError {
            line: Some(line),
            event: None,
            message,
        };
        let process = match get(&pairs, "process") {
            Some(Edn::Int(p)) if *p >= 0 => *p as u64,
            Some(Edn::Int(p)) => return Err(err(format!("negative :process {p}"))),
            // The nemesis and other non-client processes.
            Some(Edn::Kw(_)) | Some(Edn::Sym(_)) | Some(Edn::Str(_)) => continue,
            Some(other) => return Err(err(format!("bad :process {}", to_json(other)))),
            None => return Err(err("operation has no :process".into())),
        };
        let kind = match get(&pairs, "type") {
            Some(Edn::Kw(t)) => match t.as_str() {
                "invoke" => EventKind::Invoke,
                "ok" => EventKind::Ok,
                "fail" => EventKind::Fail,
                "info" => EventKind::Info,
                other => return Err(err(format!(":type :{other} is not invoke/ok/fail/info"))),
            },
            Some(other) => return Err(err(format!("bad :type {}", to_json(other)))),
            None => return Err(err("operation has no :type".into())),
        };
        let f = match get(&pairs, "f") {
            Some(Edn::Kw(t)) | Some(Edn::Sym(t)) | Some(Edn::Str(t)) => match t.as_str() {
                "read" => Op::Read,
                "write" => Op::Write,
                "cas" => Op::Cas,
                other => {
                    return Err(err(format!(
                        ":f {other} is not a register operation (read, write, cas)"
                    )))
                }
            },
            Some(other) => return Err(err(format!("bad :f {}", to_json(other)))),
            None => return Err(err("operation has no :f".into())),
        };
        let num = |name: &str| -> Result<Option<u64>, ParseError> {
            match get(&pairs, name) {
                None => Ok(None),
                Some(Edn::Int(i)) if *i >= 0 => Ok(Some(*i as u64)),
                Some(other) => Err(err(format!("bad :{name} {}", to_json(other)))),
            }
        };
        raws.push(Raw {
            line,
            index: num("index")?,
            time: num("time")?,
            process,
            kind,
            f,
            value: get(&pairs, "value").cloned().unwrap_or(Edn::Nil),
        });
    }
    let pair_of = |v: &Edn| -> Option<(Edn, Edn)> {
        match v {
            Edn::Seq(items) if items.len() == 2 => Some((items[0].clone(), items[1].clone())),
            _ => None,
        }
    };
    let keyed = !raws.is_empty()
        && raws.iter().all(|r| match pair_of(&r.value) {
            Some((_, inner)) => r.f != Op::Cas || matches!(&inner, Edn::Seq(x) if x.len() == 2),
            None => false,
        });
    let mut out = Vec::with_capacity(raws.len());
    for (pos, r) in raws.into_iter().enumerate() {
        let (key, value) = if keyed {
            let (k, v) = pair_of(&r.value).unwrap_or((Edn::Nil, Edn::Nil));
            (to_json(&k), to_json(&v))
        } else {
            (Value::Null, to_json(&r.value))
        };
        if r.f == Op::Cas && !matches!(&value, Value::Array(a) if a.len() == 2) {
            {
                return Err(ParseError {
                    line: Some(r.line),
                    event: None,
                    message: format!("cas value must be [from to], found {value}"),
                });
            }
        }
        let (kind, value) = match (r.f, r.kind) {
            (Op::Read, EventKind::Invoke) => (EventKind::Invoke, Value::Null),
            // Knossos: an ok read of nil means the value is unknown.
            (Op::Read, EventKind::Ok) if value.is_null() => (EventKind::Info, Value::Null),
            (_, k) => (k, value),
        };
        let index = r.index.unwrap_or(pos as u64);
        out.push(Event {
            index,
            time: r.time.unwrap_or(index),
            process: r.process,
            kind,
            f: r.f,
            key,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edn_single_register_with_nemesis_and_comments() {
        let t = "[{:process 0, :type :invoke, :f :write, :value 3}\n ; note\n \
                 {:process :nemesis, :type :info, :f :start, :value \"x [\"}\n \
                 {:process 0, :type :ok, :f :write, :value 3}\n \
                 {:process 1, :type :invoke, :f :read, :value nil}\n \
                 {:process 1, :type :ok, :f :read, :value nil}]";
        let ev = parse_edn(t).expect("parses");
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0].key, Value::Null);
        assert_eq!(ev[1].value, Value::from(3));
        assert_eq!(ev[3].kind, EventKind::Info, "ok read of nil is unknown");
    }

    #[test]
    fn edn_keyed_tuples() {
        let t = "{:process 0, :type :invoke, :f :cas, :value [7 [1 4]], :index 5, :time 99}\n\
                 {:process 0, :type :ok, :f :cas, :value #jepsen.independent/tuple [7 [1 4]]}";
        let ev = parse_edn(t).expect("parses");
        assert_eq!(ev[0].key, Value::from(7));
        assert_eq!(ev[0].value, serde_json::json!([1, 4]));
        assert_eq!((ev[0].index, ev[0].time), (5, 99));
    }

    #[test]
    fn edn_errors_name_the_line() {
        let e = parse_edn("[{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :bogus, :f :read}]")
            .expect_err("bad type");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("bogus"), "{e}");
        let e = parse_edn("[{:process 0 :type").expect_err("unclosed");
        assert!(
            e.to_string().contains("never closed") || e.to_string().contains("end"),
            "{e}"
        );
        let e = parse_edn(&"[".repeat(1000)).expect_err("deep");
        assert!(e.to_string().contains("deep"), "{e}");
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let good =
            r#"{"index":0,"time":1,"process":3,"type":"invoke","f":"read","key":7,"value":null}"#;
        let bad =
            r#"{"index":1,"time":1,"process":3,"type":"okay","f":"read","key":7,"value":null}"#;
        let e = parse_jsonl(&format!("{good}\n\n{bad}\n")).expect_err("bad type");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("okay"), "{e}");
    }
}
