//! [`Value`] ↔ PostgreSQL binary formats, driven by the type the server inferred.
//!
//! Binds ([`PgBind`]): the server infers each parameter's type from the statement, and the
//! value is converted to it, so a dynamically typed value binds anywhere it makes sense:
//!
//! | value   | binds into                                                                |
//! |---------|---------------------------------------------------------------------------|
//! | `Null`  | any type                                                                  |
//! | `Bool`  | bool; int2/4/8, float4/8, numeric as 0/1; text, json(b) as `true`/`false` |
//! | `Int`   | int2/int4 (range-checked), int8, oid, float4/8, numeric, bool (≠ 0), text, json(b) |
//! | `Float` | float4/8, numeric; integers when integral and in range; text, json(b)     |
//! | `Text`  | text, varchar, bpchar, name, enums, json, jsonb; parsed into integers, floats, numeric, bool; bytea as UTF-8 |
//! | `Blob`  | bytea                                                                     |
//!
//! Anything else is a clear error naming the parameter type.
//!
//! Columns ([`PgCell`]): bool → `Bool`; int2/4/8, oid → `Int`; float4/8 → `Float`;
//! text, varchar, bpchar, name, `"char"`, enums, json, jsonb → `Text`; bytea → `Blob`;
//! void → `Null`; numeric → `Int` when it has no fractional digits and fits in i64,
//! else `Float` (NaN and ±Infinity included). Basalt's DDL uses `double precision`, never
//! `numeric`; numeric appears only from aggregates such as `SUM(bigint)` or `AVG`.
//! Other types (timestamps, uuid, arrays, ...) are an error telling to cast in SQL.

use std::error::Error;

use basalt_store::Value;
use bytes::{BufMut, BytesMut};
use postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// A [`Value`] as a statement parameter.
#[derive(Debug)]
pub(crate) struct PgBind<'v>(pub(crate) &'v Value);

impl ToSql for PgBind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        encode(self.0, ty, out)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text_like(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

fn mismatch(what: &str, ty: &Type) -> BoxError {
    format!("cannot bind {what} to a parameter of type {}", ty.name()).into()
}

fn encode_text(text: &str, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    if *ty == Type::JSONB {
        out.put_u8(1);
    }
    out.put_slice(text.as_bytes());
    Ok(IsNull::No)
}

fn encode(value: &Value, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    if let Kind::Domain(inner) = ty.kind() {
        return encode(value, inner, out);
    }
    let json = matches!(*ty, Type::JSON | Type::JSONB);
    match value {
        Value::Null => Ok(IsNull::Yes),
        Value::Bool(flag) => match *ty {
            Type::BOOL => flag.to_sql(ty, out),
            Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => {
                encode(&Value::Int(i64::from(*flag)), ty, out)
            }
            _ if json || is_text_like(ty) => {
                encode_text(if *flag { "true" } else { "false" }, ty, out)
            }
            _ => Err(mismatch("a boolean", ty)),
        },
        Value::Int(int) => encode_int(*int, ty, out),
        Value::Float(float) => encode_float(*float, ty, out),
        Value::Text(text) => encode_parsed_text(text, ty, out),
        Value::Blob(blob) => match *ty {
            Type::BYTEA => blob.as_slice().to_sql(ty, out),
            _ => Err(mismatch("a blob", ty)),
        },
    }
}

fn encode_int(int: i64, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    let out_of_range = || -> BoxError {
        format!(
            "{int} is out of range for a parameter of type {}",
            ty.name()
        )
        .into()
    };
    match *ty {
        Type::INT2 => i16::try_from(int)
            .map_err(|_| out_of_range())?
            .to_sql(ty, out),
        Type::INT4 => i32::try_from(int)
            .map_err(|_| out_of_range())?
            .to_sql(ty, out),
        Type::INT8 => int.to_sql(ty, out),
        Type::OID => u32::try_from(int)
            .map_err(|_| out_of_range())?
            .to_sql(ty, out),
        Type::FLOAT4 => (int as f32).to_sql(ty, out),
        Type::FLOAT8 => (int as f64).to_sql(ty, out),
        Type::NUMERIC => encode_numeric(&int.to_string(), out),
        Type::BOOL => (int != 0).to_sql(ty, out),
        Type::JSON | Type::JSONB => encode_text(&int.to_string(), ty, out),
        _ if is_text_like(ty) => encode_text(&int.to_string(), ty, out),
        _ => Err(mismatch("an integer", ty)),
    }
}

fn encode_float(float: f64, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    match *ty {
        Type::FLOAT4 => (float as f32).to_sql(ty, out),
        Type::FLOAT8 => float.to_sql(ty, out),
        Type::NUMERIC => encode_numeric(&float_text(float), out),
        Type::INT2 | Type::INT4 | Type::INT8 => {
            // `i64::MAX as f64` is 2^63: the range is [-2^63, 2^63), exactly i64's.
            let limit = i64::MAX as f64;
            if float.fract() == 0.0 && (-limit..limit).contains(&float) {
                encode_int(float as i64, ty, out)
            } else {
                Err(format!(
                    "cannot bind {float} to a parameter of type {}: not an integer",
                    ty.name()
                )
                .into())
            }
        }
        Type::JSON | Type::JSONB if !float.is_finite() => {
            Err(format!("{float} is not valid JSON").into())
        }
        _ if matches!(*ty, Type::JSON | Type::JSONB) || is_text_like(ty) => {
            encode_text(&float_text(float), ty, out)
        }
        _ => Err(mismatch("a float", ty)),
    }
}

fn float_text(float: f64) -> String {
    if float.is_nan() {
        "NaN".to_owned()
    } else if float.is_infinite() {
        if float > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        }
    } else {
        float.to_string()
    }
}

fn encode_parsed_text(text: &str, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    let unparsable = || -> BoxError {
        format!(
            "cannot bind text {text:?} to a parameter of type {}",
            ty.name()
        )
        .into()
    };
    match *ty {
        Type::JSON | Type::JSONB => encode_text(text, ty, out),
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            encode_int(text.trim().parse().map_err(|_| unparsable())?, ty, out)
        }
        Type::FLOAT4 | Type::FLOAT8 => {
            encode_float(text.trim().parse().map_err(|_| unparsable())?, ty, out)
        }
        Type::NUMERIC => encode_numeric(text, out),
        Type::BOOL => match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "yes" | "on" => true.to_sql(ty, out),
            "f" | "false" | "0" | "no" | "off" => false.to_sql(ty, out),
            _ => Err(unparsable()),
        },
        Type::BYTEA => text.as_bytes().to_sql(ty, out),
        _ if is_text_like(ty) => encode_text(text, ty, out),
        _ => Err(mismatch("text", ty)),
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Encodes a decimal (`-12.5`, `1e-3`, `NaN`, `Infinity`) in numeric's binary format:
/// ndigits, weight, sign, dscale, then base-10000 digits.
fn encode_numeric(text: &str, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    let invalid = || -> BoxError { format!("{text:?} is not a valid numeric value").into() };
    let trimmed = text.trim();
    let special = match trimmed.to_ascii_lowercase().as_str() {
        "nan" => Some(NUMERIC_NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(NUMERIC_PINF),
        "-infinity" | "-inf" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_u16(0);
        return Ok(IsNull::No);
    }
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (
            &unsigned[..at],
            unsigned[at + 1..].parse::<i64>().map_err(|_| invalid())?,
        ),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if int_part.len() + frac_part.len() == 0 || !all_digits(int_part) || !all_digits(frac_part) {
        return Err(invalid());
    }
    // Shift the decimal point by the exponent: `point` digits of `digits` are integral.
    let digits = format!("{int_part}{frac_part}");
    let point = i64::try_from(int_part.len()).map_err(|_| invalid())? + exponent;
    let dscale = (i64::try_from(digits.len()).map_err(|_| invalid())? - point).max(0);
    if !(-100_000..=100_000).contains(&point) || dscale > 0x3FFF {
        return Err(format!("{text:?} is out of range for numeric").into());
    }
    // Pad so that the integral part ends, and the fraction starts, on a 4-digit group.
    let int_len = point.max(0) as usize;
    let lead = (4 - int_len % 4) % 4;
    let mut padded = "0".repeat(lead);
    if point < 0 {
        padded.push_str(&"0".repeat(point.unsigned_abs() as usize));
    }
    padded.push_str(&digits);
    if (padded.len()) < lead + int_len {
        padded.push_str(&"0".repeat(lead + int_len - padded.len()));
    }
    while !padded.len().is_multiple_of(4) {
        padded.push('0');
    }
    let mut groups: Vec<i16> = padded
        .as_bytes()
        .chunks(4)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0i16, |acc, byte| acc * 10 + i16::from(byte - b'0'))
        })
        .collect();
    let mut weight = i64::try_from((lead + int_len) / 4).map_err(|_| invalid())? - 1;
    let leading_zeros = groups.iter().take_while(|group| **group == 0).count();
    groups.drain(..leading_zeros);
    weight -= i64::try_from(leading_zeros).map_err(|_| invalid())?;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let sign = if negative && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(groups.len()).map_err(|_| invalid())?);
    out.put_i16(i16::try_from(weight).map_err(|_| invalid())?);
    out.put_u16(sign);
    out.put_u16(dscale as u16);
    for group in groups {
        out.put_i16(group);
    }
    Ok(IsNull::No)
}

/// A result column read as a [`Value`].
#[derive(Debug)]
pub(crate) struct PgCell(pub(crate) Value);

impl<'a> FromSql<'a> for PgCell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        decode(ty, raw).map(PgCell)
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, BoxError> {
        Ok(PgCell(Value::Null))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    if let Kind::Domain(inner) = ty.kind() {
        return decode(inner, raw);
    }
    if matches!(ty.kind(), Kind::Enum(_)) || ty.name() == "citext" {
        return Ok(Value::Text(<&str>::from_sql(&Type::TEXT, raw)?.to_owned()));
    }
    Ok(match *ty {
        Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
        Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
        Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
        Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
        Type::OID => Value::Int(i64::from(u32::from_sql(ty, raw)?)),
        Type::FLOAT4 => Value::Float(f64::from(f32::from_sql(ty, raw)?)),
        Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            Value::Text(<&str>::from_sql(&Type::TEXT, raw)?.to_owned())
        }
        Type::JSONB => match raw.split_first() {
            Some((1, json)) => Value::Text(<&str>::from_sql(&Type::TEXT, json)?.to_owned()),
            _ => return Err("unsupported jsonb format version".into()),
        },
        Type::CHAR => Value::Text(char::from(raw.first().copied().unwrap_or(0)).to_string()),
        Type::BYTEA => Value::Blob(raw.to_vec()),
        Type::NUMERIC => decode_numeric(raw)?,
        Type::VOID => Value::Null,
        _ => {
            return Err(format!(
                "unsupported column type {}: cast it in SQL (to text, bigint, double precision, \
                 boolean, bytea or jsonb)",
                ty.name()
            )
            .into());
        }
    })
}

/// Decodes numeric's binary format into `Int` (no fractional digits, fits in i64) or
/// `Float`.
fn decode_numeric(raw: &[u8]) -> Result<Value, BoxError> {
    let malformed = || -> BoxError { "malformed numeric value".into() };
    let word = |at: usize| -> Result<u16, BoxError> {
        let bytes = raw.get(at..at + 2).ok_or_else(malformed)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    match sign {
        NUMERIC_NAN => return Ok(Value::Float(f64::NAN)),
        NUMERIC_PINF => return Ok(Value::Float(f64::INFINITY)),
        NUMERIC_NINF => return Ok(Value::Float(f64::NEG_INFINITY)),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return Err(malformed()),
    }
    let groups: Vec<u16> = (0..ndigits)
        .map(|idx| word(8 + 2 * idx))
        .collect::<Result<_, _>>()?;
    if groups.iter().any(|group| *group > 9999) {
        return Err(malformed());
    }
    let negative = sign == NUMERIC_NEG;
    if dscale == 0
        && let Some(int) = numeric_to_i64(&groups, weight, negative)
    {
        return Ok(Value::Int(int));
    }
    if groups.is_empty() {
        return Ok(Value::Float(0.0));
    }
    // Write the decimal out and let the float parser round it correctly.
    let mut text = String::with_capacity(8 + 4 * groups.len());
    if negative {
        text.push('-');
    }
    text.push_str("0.");
    for group in &groups {
        text.push_str(&format!("{group:04}"));
    }
    text.push_str(&format!("e{}", 4 * (weight + 1)));
    text.parse::<f64>()
        .map(Value::Float)
        .map_err(|_| malformed())
}

fn numeric_to_i64(groups: &[u16], weight: i64, negative: bool) -> Option<i64> {
    let mut value: i128 = 0;
    for position in 0..=weight.max(-1) {
        let group = usize::try_from(position)
            .ok()
            .and_then(|idx| groups.get(idx))
            .copied()
            .unwrap_or(0);
        value = value.checked_mul(10_000)?.checked_add(i128::from(group))?;
        if value > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    // Groups past the weight are fractional; with dscale 0 they are zero.
    let fractional = usize::try_from(weight + 1).unwrap_or(0);
    if groups.iter().skip(fractional).any(|group| *group != 0) {
        return None;
    }
    i64::try_from(if negative { -value } else { value }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_numeric(text, &mut out).expect("valid numeric");
        out.to_vec()
    }

    fn header_and_groups(raw: &[u8]) -> (i16, i16, u16, u16, Vec<i16>) {
        let word = |at: usize| i16::from_be_bytes([raw[at], raw[at + 1]]);
        let ndigits = word(0) as usize;
        let groups = (0..ndigits).map(|idx| word(8 + 2 * idx)).collect();
        (word(0), word(2), word(4) as u16, word(6) as u16, groups)
    }

    #[test]
    fn numeric_encoding_matches_postgres_layout() {
        assert_eq!(
            header_and_groups(&numeric("0")),
            (0, 0, NUMERIC_POS, 0, vec![])
        );
        assert_eq!(
            header_and_groups(&numeric("12345")),
            (2, 1, NUMERIC_POS, 0, vec![1, 2345])
        );
        assert_eq!(
            header_and_groups(&numeric("-1.5")),
            (2, 0, NUMERIC_NEG, 1, vec![1, 5000])
        );
        assert_eq!(
            header_and_groups(&numeric("0.0001")),
            (1, -1, NUMERIC_POS, 4, vec![1])
        );
        assert_eq!(
            header_and_groups(&numeric("0.00001")),
            (1, -2, NUMERIC_POS, 5, vec![1000])
        );
        assert_eq!(
            header_and_groups(&numeric("10000")),
            (1, 1, NUMERIC_POS, 0, vec![1])
        );
        assert_eq!(
            header_and_groups(&numeric("1.5e3")),
            (1, 0, NUMERIC_POS, 0, vec![1500])
        );
        assert_eq!(
            header_and_groups(&numeric("-0")),
            (0, 0, NUMERIC_POS, 0, vec![])
        );
        assert_eq!(header_and_groups(&numeric("NaN")).2, NUMERIC_NAN);
    }

    #[test]
    fn numeric_round_trips_through_decode() {
        let cases = [
            ("0", Value::Int(0)),
            ("42", Value::Int(42)),
            ("-9223372036854775808", Value::Int(i64::MIN)),
            ("9223372036854775807", Value::Int(i64::MAX)),
            (
                "9223372036854775808",
                Value::Float(9_223_372_036_854_775_808.0),
            ),
            ("12.25", Value::Float(12.25)),
            ("-0.000123", Value::Float(-0.000123)),
            ("1e300", Value::Float(1e300)),
            ("0.1", Value::Float(0.1)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                decode_numeric(&numeric(text)).ok(),
                Some(expected),
                "{text}"
            );
        }
        assert!(matches!(decode_numeric(&numeric("NaN")), Ok(Value::Float(f)) if f.is_nan()));
        assert_eq!(
            decode_numeric(&numeric("-Infinity")).ok(),
            Some(Value::Float(f64::NEG_INFINITY))
        );
    }

    #[test]
    fn float_text_is_decimal_without_exponent() {
        assert_eq!(float_text(0.1), "0.1");
        assert_eq!(float_text(1e21), "1000000000000000000000");
        assert_eq!(
            decode_numeric(&numeric(&float_text(5e-324))).ok(),
            Some(Value::Float(5e-324))
        );
    }

    #[test]
    fn invalid_numeric_text_is_rejected() {
        for text in ["", "abc", "1.2.3", "--1", "1e", "e5", "."] {
            assert!(
                encode_numeric(text, &mut BytesMut::new()).is_err(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn binds_convert_to_the_inferred_type() {
        let encoded = |value: Value, ty: Type| {
            let mut out = BytesMut::new();
            encode(&value, &ty, &mut out).map(|_| out.to_vec())
        };
        assert_eq!(encoded(Value::Int(7), Type::INT2).ok(), Some(vec![0, 7]));
        assert!(encoded(Value::Int(70_000), Type::INT2).is_err());
        assert_eq!(encoded(Value::Int(7), Type::TEXT).ok(), Some(b"7".to_vec()));
        assert_eq!(
            encoded(Value::Text("{}".into()), Type::JSONB).ok(),
            Some(b"\x01{}".to_vec())
        );
        assert_eq!(
            encoded(Value::Bool(true), Type::INT4).ok(),
            Some(vec![0, 0, 0, 1])
        );
        assert_eq!(
            encoded(Value::Float(3.0), Type::INT8).ok(),
            Some(vec![0, 0, 0, 0, 0, 0, 0, 3])
        );
        assert!(encoded(Value::Float(3.5), Type::INT8).is_err());
        assert_eq!(
            encoded(Value::Text(" 12 ".into()), Type::INT4).ok(),
            Some(vec![0, 0, 0, 12])
        );
        assert!(encoded(Value::Text("x".into()), Type::INT4).is_err());
        assert!(encoded(Value::Blob(vec![1]), Type::TEXT).is_err());
        let error = encoded(Value::Text("now".into()), Type::TIMESTAMPTZ).expect_err("unsupported");
        assert!(error.to_string().contains("timestamptz"), "{error}");
    }
}
