//! Feeds arbitrary bytes to the journal's decoders: the entry frame, the event payload and the
//! header (mds spec §6.4, §8 facts 73–74).
//!
//! Replay reads whatever a crash left on disk, so every decoder must turn garbage into an error
//! (a torn tail or a corrupt entry) and never panic. Whatever does decode as an event must
//! re-encode and read back as itself, because replay hands it to the cache as the truth.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mds_journal::{JournalHeader, LogEvent, StreamFormat, frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = LogEvent::decode_payload(data) {
        let bytes = event.to_payload();
        let again = LogEvent::decode_payload(&bytes).expect("a re-encoded event must decode");
        assert_eq!(again, event);
    }
    for format in [StreamFormat::Resilient, StreamFormat::ResilientCrc] {
        let _ = frame::parse_frame(format, 0, data);
    }
    let _ = JournalHeader::from_bytes(data);
});
