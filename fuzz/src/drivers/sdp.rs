//! `sdp`: offer parsing, negotiation and the answer we print.

use sspr_ivr::codec::Codec;
use sspr_ivr::sip::sdp;

use super::addr;

/// `sdp`: parse; negotiate against every preference; the answer we would print
/// must parse and negotiate back to the same media.
pub fn sdp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(offer) = sdp::parse(&text) else {
        return;
    };
    let local = addr("127.0.0.1:20000");
    for pref in [
        &[Codec::Pcmu, Codec::Pcma][..],
        &[Codec::Pcma, Codec::Pcmu][..],
        &[Codec::Pcma][..],
        &[][..],
    ] {
        let Ok(neg) = sdp::negotiate(&offer, pref) else {
            continue;
        };
        assert!(
            pref.contains(&neg.codec),
            "negotiated a codec not preferred"
        );
        assert!(neg.ptime_ms > 0, "zero ptime negotiated");
        // An SDES attribute taken from the offer prints and parses back as itself.
        let answer = sdp::answer(&neg, local, 7, neg.crypto.as_ref());
        let parsed = sdp::parse(&answer)
            .unwrap_or_else(|e| panic!("our answer does not parse ({e}): {answer:?}"));
        let back = sdp::negotiate(&parsed, &[neg.codec])
            .unwrap_or_else(|e| panic!("our answer does not negotiate ({e}): {answer:?}"));
        assert_eq!(back.codec, neg.codec);
        assert_eq!(back.audio_pt, neg.audio_pt);
        assert_eq!(back.telephone_event_pt, neg.telephone_event_pt);
        assert_eq!(back.ptime_ms, neg.ptime_ms);
        assert_eq!(back.remote, local);
        assert_eq!(back.crypto, neg.crypto);
    }
}
