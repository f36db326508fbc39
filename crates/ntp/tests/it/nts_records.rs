//! The NTS-KE record codec on arbitrary input: decoding never panics and stays within
//! its limits, and every record survives encoding and decoding.

use proptest::prelude::*;
use sockit_ntp::nts::records::{
    decode_message, encode_message, Limits, Record, RecordError, REQUEST_LIMITS, RESPONSE_LIMITS,
};

fn record() -> impl Strategy<Value = Record> {
    let ids = proptest::collection::vec(any::<u16>(), 0..8);
    prop_oneof![
        ids.clone().prop_map(Record::NextProtocol),
        ids.prop_map(Record::AeadAlgorithm),
        any::<u16>().prop_map(Record::Error),
        any::<u16>().prop_map(Record::Warning),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Record::NewCookie),
        "[!-~]{1,40}".prop_map(Record::Server),
        any::<u16>().prop_map(Record::Port),
        (
            any::<bool>(),
            8u16..0x8000,
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(critical, record_type, body)| Record::Unknown {
                critical,
                record_type,
                body
            }),
    ]
}

proptest! {
    #[test]
    fn decoding_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for limits in [REQUEST_LIMITS, RESPONSE_LIMITS] {
            match decode_message(&bytes, limits) {
                Ok(Some((records, used))) => {
                    prop_assert!(used <= bytes.len() && used <= limits.max_bytes);
                    prop_assert!(records.len() < limits.max_records);
                }
                Ok(None) => prop_assert!(bytes.len() < limits.max_bytes),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn records_round_trip(records in proptest::collection::vec(record(), 0..20)) {
        let wire = encode_message(&records).unwrap();
        let (decoded, used) = decode_message(&wire, RESPONSE_LIMITS).unwrap().unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(decoded, records);
    }

    #[test]
    fn split_anywhere_needs_more(records in proptest::collection::vec(record(), 0..6), cut in any::<prop::sample::Index>()) {
        let wire = encode_message(&records).unwrap();
        let cut = cut.index(wire.len());
        prop_assert_eq!(decode_message(&wire[..cut], RESPONSE_LIMITS), Ok(None));
    }

    #[test]
    fn limits_hold(records in proptest::collection::vec(record(), 1..40), max_bytes in 4usize..600, max_records in 1usize..20) {
        let wire = encode_message(&records).unwrap();
        let limits = Limits { max_bytes, max_records };
        match decode_message(&wire, limits) {
            Ok(Some((decoded, used))) => {
                prop_assert!(used <= max_bytes);
                prop_assert!(decoded.len() < max_records);
            }
            Ok(None) => prop_assert!(false, "a whole message is never incomplete"),
            Err(e) => prop_assert!(
                matches!(e, RecordError::TooLong { .. } | RecordError::TooManyRecords { .. }),
                "{e}"
            ),
        }
    }
}
