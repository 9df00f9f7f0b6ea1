//! Where a key path (`actions.lookup_user.outcomes.2.outcome`) sits in YAML text,
//! as a 1-based line and column, so a finding made after parsing — a flow
//! outcome the actions config does not produce, an unknown state — can name the
//! line an operator has to edit, not only the file.
//!
//! It walks the document with the same parser that loaded it (serde_yaml), so
//! positions agree with the loader's own syntax errors, and flow style
//! (`{ status: 404, outcome: not_found }`) and block style locate alike. The walk
//! stops at the wanted node by failing there: serde_yaml stamps an error with the
//! position of the node being read, and that position is the answer. Pure: it
//! takes text and reads no file.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The marker error that ends the walk at the wanted node.
const FOUND: &str = "\u{1}yaml_path: found";

/// Line and column (both 1-based) of the node at `path` (dotted: mapping keys
/// and sequence indexes). For a mapping entry that is its key; for a sequence
/// element, the element. `None` when the text does not parse or has no such node.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return None;
    }
    let de = serde_yaml::Deserializer::from_str(text);
    match (Seek { path: &segments }).deserialize(de) {
        Ok(()) => None,
        // serde_yaml's message is prefixed with the path it was reading.
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        Err(_) => None,
    }
}

/// Like [`locate`], but when `path` itself is absent (a finding about a key
/// that should be there), the deepest enclosing node that exists, and the path
/// it stands for.
pub fn locate_nearest<'p>(text: &str, path: &'p str) -> Option<(&'p str, (usize, usize))> {
    let mut p = path;
    loop {
        if let Some(pos) = locate(text, p) {
            return Some((p, pos));
        }
        p = &p[..p.rfind('.')?];
    }
}

/// Looks for `path` in the node it is given.
struct Seek<'p> {
    path: &'p [&'p str],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((head, rest)) = self.path.split_first() else {
            return Ok(());
        };
        while let Some(hit) = map.next_key_seed(Key {
            want: head,
            last: rest.is_empty(),
        })? {
            if hit {
                map.next_value_seed(Seek { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((head, rest)) = self.path.split_first() else {
            return Ok(());
        };
        let want: Option<usize> = head.parse().ok();
        let mut i = 0;
        loop {
            if Some(i) == want {
                let found = if rest.is_empty() {
                    seq.next_element_seed(Stop)?
                } else {
                    seq.next_element_seed(Seek { path: rest })?
                };
                if found.is_none() {
                    return Ok(());
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): look inside the value.
        let (IgnoredAny, variant) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

/// Reads one mapping key: `true` when it is the wanted one (and the walk goes
/// on into its value); ends the walk with [`FOUND`] when it is the last segment.
struct Key<'w> {
    want: &'w str,
    last: bool,
}

impl Key<'_> {
    fn hit<E: de::Error>(&self, key: &str) -> Result<bool, E> {
        match (key == self.want, self.last) {
            (true, true) => Err(E::custom(FOUND)),
            (hit, _) => Ok(hit),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.hit(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.hit(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.hit(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.hit(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.hit(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// Ends the walk at whatever node it is given, so the error carries that node's position.
struct Stop;

impl<'de> DeserializeSeed<'de> for Stop {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Stop {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the wanted node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
actions:
  lookup_user:
    method: GET
    outcomes:
      - { status: 200, outcome: success }
      - { status: 404, outcome: not_fund }
states:
  menu:
    options: { 1: a, \"#\": b }
    on:
      success: done
";

    #[test]
    fn keys_and_elements_in_block_and_flow_style() {
        assert_eq!(locate(TEXT, "actions"), Some((1, 1)));
        assert_eq!(locate(TEXT, "actions.lookup_user.method"), Some((3, 5)));
        assert_eq!(locate(TEXT, "actions.lookup_user.outcomes.1"), Some((6, 9)));
        assert_eq!(
            locate(TEXT, "actions.lookup_user.outcomes.1.outcome"),
            Some((6, 24))
        );
        assert_eq!(locate(TEXT, "states.menu.options.1"), Some((9, 16)));
        assert_eq!(locate(TEXT, "states.menu.options.#"), Some((9, 22)));
        assert_eq!(locate(TEXT, "states.menu.on.success"), Some((11, 7)));
    }

    #[test]
    fn absent_paths_and_the_nearest_existing_node() {
        assert_eq!(locate(TEXT, "states.menu.on.failure"), None);
        assert_eq!(locate(TEXT, "actions.lookup_user.outcomes.7"), None);
        assert_eq!(locate(TEXT, "actions.lookup_user.method.x"), None);
        assert_eq!(locate("{ broken", "a"), None);
        assert_eq!(
            locate_nearest(TEXT, "states.menu.on.failure"),
            Some(("states.menu.on", (10, 5)))
        );
        assert_eq!(locate_nearest(TEXT, "nothing.here"), None);
    }
}
