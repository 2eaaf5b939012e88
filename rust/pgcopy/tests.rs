use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Hex with spaces and newlines ignored, so expectations can be laid out field by field.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn one_chunk(w: CopyWriter) -> Vec<u8> {
    w.finish().concat()
}

/// Split a COPY stream into rows of raw fields, checking header and trailer.
fn parse(s: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
    assert_eq!(&s[..19], b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
    let mut i = 19;
    let mut rows = Vec::new();
    loop {
        let n = i16::from_be_bytes([s[i], s[i + 1]]);
        i += 2;
        if n == -1 {
            assert_eq!(i, s.len(), "bytes after the trailer");
            return rows;
        }
        let mut row = Vec::new();
        for _ in 0..n {
            let len = i32::from_be_bytes(s[i..i + 4].try_into().unwrap());
            i += 4;
            if len < 0 {
                row.push(None);
            } else {
                row.push(Some(s[i..i + len as usize].to_vec()));
                i += len as usize;
            }
        }
        rows.push(row);
    }
}

/// The one field of a one-row, one-field stream written by `f`.
fn field(f: impl FnOnce(&mut CopyWriter)) -> Option<Vec<u8>> {
    let mut w = CopyWriter::new(1 << 20);
    w.begin_row(1);
    f(&mut w);
    parse(&one_chunk(w)).remove(0).remove(0)
}

#[test]
fn golden_row_of_every_type() {
    let mut w = CopyWriter::new(1 << 20);
    w.begin_row(12);
    w.int2(-2);
    w.int4(1);
    w.int8(-1);
    w.float8(1.5);
    w.bool(true);
    w.text("hé").unwrap();
    w.bytea(&[0, 255]);
    w.timestamptz_micros(946_684_801_000_000).unwrap(); // 2000-01-01 00:00:01 UTC
    w.jsonb(r#"{"a":1}"#).unwrap();
    w.text_array(&[Some("a"), None]).unwrap();
    w.int8_array(&[Some(7)]);
    w.tsvector(&[("ab".to_string(), vec![1, 3]), ("c".to_string(), vec![])])
        .unwrap();
    w.begin_row(2);
    w.null();
    w.text_array::<&str>(&[]).unwrap();
    assert_eq!(w.rows(), 2);
    // Written from the PostgreSQL docs (COPY binary format) and the *send functions.
    let expected = hex("50 47 43 4f 50 59 0a ff 0d 0a 00   00000000   00000000
         000c
         00000002 fffe
         00000004 00000001
         00000008 ffffffffffffffff
         00000008 3ff8000000000000
         00000001 01
         00000003 68 c3a9
         00000002 00 ff
         00000008 00000000000f4240
         00000008 01 7b 22 61 22 3a 31 7d
         0000001d 00000001 00000001 00000019 00000002 00000001  00000001 61  ffffffff
         00000020 00000001 00000000 00000014 00000001 00000001  00000008 0000000000000007
         00000011 00000002  6162 00 0002 0001 0003  63 00 0000
         0002
         ffffffff
         0000000c 00000000 00000000 00000019
         ffff");
    assert_eq!(one_chunk(w), expected);
}

#[test]
fn empty_stream_is_header_and_trailer() {
    let w = CopyWriter::new(0);
    assert_eq!(w.rows(), 0);
    assert_eq!(
        one_chunk(w),
        hex("5047434f5059 0aff0d0a00 00000000 00000000 ffff")
    );
}

#[test]
fn text_with_nul_is_rejected_and_writes_nothing() {
    let mut w = CopyWriter::new(64);
    w.begin_row(1);
    assert!(w.text("a\0b").is_err());
    assert!(w.text_array(&[Some("ok"), Some("\0")]).is_err());
    w.text("ok").unwrap();
    assert_eq!(parse(&one_chunk(w)), vec![vec![Some(b"ok".to_vec())]]);
}

#[test]
fn jsonb_rejects_nul_escape_and_invalid_json() {
    let mut w = CopyWriter::new(64);
    w.begin_row(1);
    for bad in [
        r#"{"a":"\u0000"}"#,
        "{\"a\":\"\0\"}",
        "{",
        "[1,]",
        "",
        "'x'",
    ] {
        assert!(w.jsonb(bad).is_err(), "{bad:?}");
    }
    w.jsonb(" [1, \"\\u00e9\"] ").unwrap();
    assert_eq!(
        parse(&one_chunk(w))[0][0].as_deref(),
        Some(&b"\x01 [1, \"\\u00e9\"] "[..])
    );
}

fn ts(unix_micros: i64) -> Result<i64, &'static str> {
    let mut w = CopyWriter::new(64);
    w.begin_row(1);
    w.timestamptz_micros(unix_micros)?;
    let f = parse(&one_chunk(w)).remove(0).remove(0).unwrap();
    Ok(i64::from_be_bytes(f.try_into().unwrap()))
}

#[test]
fn timestamps_count_from_2000() {
    assert_eq!(ts(946_684_800_000_000), Ok(0));
    assert_eq!(ts(0), Ok(-946_684_800_000_000));
    assert_eq!(ts(-1), Ok(-946_684_800_000_001));
    // 4714-11-24 00:00 UTC BC is PostgreSQL's first instant; one microsecond earlier is not.
    assert_eq!(ts(-210_866_803_200_000_000), Ok(-211_813_488_000_000_000));
    assert!(ts(-210_866_803_200_000_001).is_err());
    assert!(ts(i64::MIN).is_err());
    assert_eq!(ts(i64::MAX), Ok(i64::MAX - 946_684_800_000_000));
}

fn tsv(lexemes: &[(&str, &[u16])]) -> Result<(), &'static str> {
    let mut w = CopyWriter::new(64);
    w.begin_row(1);
    w.tsvector(lexemes)
}

#[test]
fn tsvector_rules() {
    assert_eq!(tsv(&[]), Ok(()));
    assert_eq!(tsv(&[("a", &[1, 16383]), ("b", &[])]), Ok(()));
    assert!(tsv(&[("b", &[]), ("a", &[])]).is_err(), "unsorted");
    assert!(tsv(&[("a", &[]), ("a", &[])]).is_err(), "duplicate");
    assert!(
        tsv(&[("ab", &[]), ("a", &[])]).is_err(),
        "prefix after longer"
    );
    assert!(tsv(&[("", &[])]).is_err(), "empty lexeme");
    assert!(tsv(&[("a\0", &[])]).is_err(), "NUL");
    assert!(tsv(&[("a", &[0])]).is_err(), "position 0");
    assert!(tsv(&[("a", &[16384])]).is_err(), "position too large");
    assert!(tsv(&[("a", &[2, 2])]).is_err(), "positions not ascending");
    let many: Vec<u16> = (1..=257).collect();
    assert!(tsv(&[("a", &many[..256])]).is_ok());
    assert!(tsv(&[("a", &many)]).is_err(), "257 positions");
    let long = "x".repeat(2046);
    assert!(tsv(&[(&long, &[])]).is_ok());
    let long = "x".repeat(2047);
    assert!(tsv(&[(&long, &[])]).is_err(), "lexeme too long");
    // 600 distinct 2000-byte lexemes: 1.2 MB of lexeme storage.
    let big: Vec<(String, Vec<u16>)> = (0..600)
        .map(|i| (format!("{i:04}{}", "y".repeat(1996)), vec![]))
        .collect();
    let mut w = CopyWriter::new(64);
    w.begin_row(1);
    assert!(w.tsvector(&big).is_err(), "over 1 MiB");
    assert!(w.tsvector(&big[..500]).is_ok());
}

#[test]
fn empty_and_null_arrays() {
    assert_eq!(
        field(|w| w.int8_array(&[])),
        Some(hex("00000000 00000000 00000014"))
    );
    assert_eq!(
        field(|w| w.int8_array(&[None, Some(-1)])),
        Some(hex(
            "00000001 00000001 00000014 00000002 00000001 ffffffff 00000008 ffffffffffffffff"
        ))
    );
}

#[test]
fn abort_row_drops_a_partial_row_across_chunks() {
    let build = |abort: bool| {
        let mut w = CopyWriter::new(8);
        w.begin_row(2);
        w.int8(1);
        w.int8(2);
        if abort {
            w.begin_row(2);
            w.text("spans several chunks").unwrap();
            assert!(w.text("\0").is_err());
            w.abort_row();
        }
        w.begin_row(2);
        w.int8(3);
        w.null();
        assert_eq!(w.rows(), 2);
        w.finish()
    };
    assert_eq!(build(true).concat(), build(false).concat());
}

#[test]
fn chunks_taken_while_writing_are_the_same_stream() {
    let build = |take: bool| {
        let mut w = CopyWriter::new(16);
        let mut chunks = Vec::new();
        for i in 0..20 {
            w.begin_row(2);
            w.int8(i);
            w.text("some text").unwrap();
            if take {
                chunks.extend(w.take_full_chunks());
            }
        }
        assert_eq!(w.rows(), 20);
        chunks.extend(w.finish());
        chunks
    };
    let taken = build(true);
    assert!(taken.len() > 1 && taken.iter().all(|c| !c.is_empty()));
    assert_eq!(taken, build(false));
}

#[test]
fn rejected_fields_write_nothing_even_across_chunks() {
    for chunk_size in [1, 16, 40, 1 << 20] {
        let mut w = CopyWriter::new(chunk_size);
        w.begin_row(1);
        assert!(w
            .tsvector(&[("a", &[1u16][..]), ("bb", &[2]), ("c", &[3, 3])])
            .is_err());
        assert!(w.tsvector(&[("z", &[][..]), ("a", &[])]).is_err());
        assert!(w
            .text_array(&[Some("long enough to rotate"), Some("\0")])
            .is_err());
        assert!(w.jsonb(r#"{"long enough to rotate": "\u0000"}"#).is_err());
        assert!(w.timestamptz_micros(i64::MIN).is_err());
        w.int8(9);
        let chunks = w.finish();
        assert!(chunks.iter().all(|c| !c.is_empty()));
        let mut expected = CopyWriter::new(1 << 20);
        expected.begin_row(1);
        expected.int8(9);
        assert_eq!(
            chunks.concat(),
            one_chunk(expected),
            "chunk size {chunk_size}"
        );
    }
}

#[test]
fn type_names() {
    for ty in [
        PgType::Int2,
        PgType::Int4,
        PgType::Int8,
        PgType::Float8,
        PgType::Bool,
        PgType::Text,
        PgType::Bytea,
        PgType::Timestamptz,
        PgType::Jsonb,
        PgType::TextArray,
        PgType::Int8Array,
        PgType::TsVector,
    ] {
        assert_eq!(PgType::parse(ty.name()).unwrap(), ty);
    }
    assert_eq!(PgType::parse("BIGINT").unwrap(), PgType::Int8);
    assert_eq!(PgType::parse("double precision").unwrap(), PgType::Float8);
    assert_eq!(PgType::parse("bigint[]").unwrap(), PgType::Int8Array);
    let err = PgType::parse("numeric").unwrap_err().to_string();
    assert!(err.contains("numeric") && err.contains("tsvector") && err.contains("int8[]"));
}

fn col(name: &str, ty: PgType, data: ColumnData) -> Column {
    Column {
        name: name.into(),
        ty,
        data,
    }
}

fn encode_err(columns: &[Column]) -> (usize, String) {
    match encode_columns(columns, 1 << 20) {
        Err(CoreError::Encode { row, column, .. }) => (row, column),
        other => panic!("expected an Encode error, got {other:?}"),
    }
}

#[test]
fn int_range_checks() {
    let ints = |v: Vec<i64>| ColumnData::Int(v.into_iter().map(Some).collect());
    let ok = encode_columns(
        &[
            col("a", PgType::Int2, ints(vec![-32768, 32767])),
            col(
                "b",
                PgType::Int4,
                ints(vec![i32::MIN.into(), i32::MAX.into()]),
            ),
            col("c", PgType::Int8, ints(vec![i64::MIN, i64::MAX])),
        ],
        1 << 20,
    )
    .unwrap()
    .concat();
    assert_eq!(parse(&ok)[1][0], Some(hex("7fff")));
    assert_eq!(parse(&ok)[0][1], Some(hex("80000000")));
    let id = col("id", PgType::Int8, ints(vec![1, 2, 3]));
    for (ty, bad) in [
        (PgType::Int2, 32768),
        (PgType::Int2, -32769),
        (PgType::Int4, 1 << 31),
        (PgType::Int4, -(1 << 31) - 1),
    ] {
        let columns = [id.clone(), col("small", ty, ints(vec![0, 0, bad]))];
        assert_eq!(encode_err(&columns), (2, "small".to_string()));
    }
}

#[test]
fn bad_values_name_row_and_column() {
    let texts = |v: &[&str]| ColumnData::Text(v.iter().map(|s| Some(s.to_string())).collect());
    let id = col("id", PgType::Int8, ColumnData::Int(vec![Some(1), None]));
    let nul = col("body", PgType::Text, texts(&["ok", "a\0"]));
    assert_eq!(encode_err(&[id.clone(), nul]), (1, "body".into()));
    let json = col("extra", PgType::Jsonb, texts(&[r#""\u0000""#, "{}"]));
    assert_eq!(encode_err(&[id.clone(), json]), (0, "extra".into()));
    let json = col("extra", PgType::Jsonb, texts(&["{}", "{"]));
    assert_eq!(encode_err(&[id.clone(), json]), (1, "extra".into()));
    let tv = ColumnData::TsVector(vec![
        None,
        Some(vec![("b".into(), vec![]), ("a".into(), vec![])]),
    ]);
    assert_eq!(
        encode_err(&[id, col("tsv", PgType::TsVector, tv)]),
        (1, "tsv".into())
    );
}

#[test]
fn column_shape_errors() {
    let int = |n: usize| ColumnData::Int(vec![Some(1); n]);
    let invalid =
        |columns: &[Column]| matches!(encode_columns(columns, 64), Err(CoreError::InvalidInput(_)));
    assert!(invalid(&[]));
    assert!(invalid(&[
        col("a", PgType::Int8, int(2)),
        col("b", PgType::Int8, int(3))
    ]));
    assert!(invalid(&[col("a", PgType::Text, int(2))]));
    assert!(invalid(&[col("a", PgType::Float8, int(2))]));
    assert!(!invalid(&[col("a", PgType::Int4, int(2))]));
}

#[test]
fn columns_match_the_row_writer() {
    let columns = [
        col("i", PgType::Int4, ColumnData::Int(vec![Some(5), None])),
        col(
            "f",
            PgType::Float8,
            ColumnData::Float(vec![None, Some(f64::NAN)]),
        ),
        col("b", PgType::Bool, ColumnData::Bool(vec![Some(false), None])),
        col(
            "by",
            PgType::Bytea,
            ColumnData::Bytes(vec![Some(vec![]), None]),
        ),
        col(
            "t",
            PgType::Timestamptz,
            ColumnData::Timestamp(vec![Some(0), None]),
        ),
        col(
            "ta",
            PgType::TextArray,
            ColumnData::TextArray(vec![Some(vec![None, Some("x".into())]), None]),
        ),
        col(
            "ia",
            PgType::Int8Array,
            ColumnData::IntArray(vec![None, Some(vec![])]),
        ),
    ];
    let mut w = CopyWriter::new(1 << 20);
    w.begin_row(7);
    w.int4(5);
    w.null();
    w.bool(false);
    w.bytea(&[]);
    w.timestamptz_micros(0).unwrap();
    w.text_array(&[None, Some("x")]).unwrap();
    w.null();
    w.begin_row(7);
    w.null();
    w.float8(f64::NAN);
    w.null();
    w.null();
    w.null();
    w.null();
    w.int8_array(&[]);
    assert_eq!(encode_columns(&columns, 3).unwrap().concat(), one_chunk(w));
}

#[derive(Clone, Debug)]
enum Value {
    Null,
    Int2(i16),
    Int8(i64),
    Float8(f64),
    Text(String),
    Bytea(Vec<u8>),
    Json(i64, String),
    TextArray(Vec<Option<String>>),
    Int8Array(Vec<Option<i64>>),
    TsVector(BTreeMap<String, BTreeSet<u16>>),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i16>().prop_map(Value::Int2),
        any::<i64>().prop_map(Value::Int8),
        any::<f64>().prop_map(Value::Float8),
        "[^\u{0}]{0,40}".prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytea),
        (any::<i64>(), "[a-z\u{e9}\u{4e2d}]{0,10}").prop_map(|(n, s)| Value::Json(n, s)),
        prop::collection::vec(prop::option::of("[^\u{0}]{0,10}"), 0..6).prop_map(Value::TextArray),
        prop::collection::vec(any::<Option<i64>>(), 0..6).prop_map(Value::Int8Array),
        prop::collection::btree_map(
            "[a-z\u{e9}]{1,8}",
            prop::collection::btree_set(1u16..=16383, 0..5),
            0..6
        )
        .prop_map(Value::TsVector),
    ]
}

fn write(rows: &[Vec<Value>], chunk_size: usize) -> Vec<Vec<u8>> {
    let mut w = CopyWriter::new(chunk_size);
    for row in rows {
        w.begin_row(row.len() as u16);
        for v in row {
            match v {
                Value::Null => w.null(),
                Value::Int2(x) => w.int2(*x),
                Value::Int8(x) => w.int8(*x),
                Value::Float8(x) => w.float8(*x),
                Value::Text(s) => w.text(s).unwrap(),
                Value::Bytea(b) => w.bytea(b),
                Value::Json(n, s) => w
                    .jsonb(&serde_json::json!({ s.as_str(): [n] }).to_string())
                    .unwrap(),
                Value::TextArray(items) => w.text_array(items).unwrap(),
                Value::Int8Array(items) => w.int8_array(items),
                Value::TsVector(map) => {
                    let lexemes: Vec<(&str, Vec<u16>)> = map
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.iter().copied().collect()))
                        .collect();
                    w.tsvector(&lexemes).unwrap()
                }
            }
        }
    }
    assert_eq!(w.rows(), rows.len());
    w.finish()
}

/// Decode a 1-dim text[] field back to its items (checks the header the encoder wrote).
fn decode_text_array(f: &[u8]) -> Vec<Option<String>> {
    let int = |i: usize| i32::from_be_bytes(f[i..i + 4].try_into().unwrap());
    if int(0) == 0 {
        assert_eq!(f.len(), 12);
        return vec![];
    }
    assert_eq!((int(0), int(8), int(16)), (1, 25, 1));
    let mut i = 20;
    let mut out = Vec::new();
    for _ in 0..int(12) {
        let len = int(i);
        i += 4;
        if len < 0 {
            out.push(None);
        } else {
            out.push(Some(
                String::from_utf8(f[i..i + len as usize].to_vec()).unwrap(),
            ));
            i += len as usize;
        }
    }
    assert_eq!(i, f.len());
    assert_eq!(int(4) == 1, out.contains(&None));
    out
}

fn decode_tsvector(f: &[u8]) -> BTreeMap<String, BTreeSet<u16>> {
    let n = i32::from_be_bytes(f[..4].try_into().unwrap());
    let mut i = 4;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let end = i + f[i..].iter().position(|&b| b == 0).unwrap();
        let lexeme = String::from_utf8(f[i..end].to_vec()).unwrap();
        i = end + 1;
        let npos = u16::from_be_bytes([f[i], f[i + 1]]);
        i += 2;
        let positions = (0..npos)
            .map(|_| {
                i += 2;
                u16::from_be_bytes([f[i - 2], f[i - 1]])
            })
            .collect();
        out.insert(lexeme, positions);
    }
    assert_eq!(i, f.len());
    out
}

proptest! {
    #[test]
    fn chunks_concatenate_to_the_same_stream(
        rows in prop::collection::vec(prop::collection::vec(value(), 1..6), 0..30),
        chunk_size in 1usize..4096,
    ) {
        let whole = write(&rows, usize::MAX);
        prop_assert_eq!(whole.len(), 1);
        let chunks = write(&rows, chunk_size);
        prop_assert!(chunks.iter().all(|c| !c.is_empty()));
        // Every field here is < 400 bytes, the header 19: no chunk overshoots by more.
        prop_assert!(chunks.iter().all(|c| c.len() <= chunk_size.max(400)));
        prop_assert_eq!(&chunks.concat(), &whole[0]);
        let parsed = parse(&whole[0]);
        prop_assert_eq!(parsed.len(), rows.len());
        for (row, fields) in rows.iter().zip(&parsed) {
            prop_assert_eq!(row.len(), fields.len());
            for (v, f) in row.iter().zip(fields) {
                match (v, f) {
                    (Value::Null, None) => {}
                    (Value::Text(s), Some(f)) => prop_assert_eq!(s.as_bytes(), &f[..]),
                    (Value::TextArray(items), Some(f)) => prop_assert_eq!(items, &decode_text_array(f)),
                    (Value::TsVector(map), Some(f)) => prop_assert_eq!(map, &decode_tsvector(f)),
                    (Value::Null, Some(_)) | (_, None) => prop_assert!(false, "null mismatch"),
                    _ => {}
                }
            }
        }
    }
}
