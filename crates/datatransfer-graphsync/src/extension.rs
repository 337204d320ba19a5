//! The graphsync extensions that carry data-transfer messages (spec `data-transfer.md` §4.1):
//! their names, the three name lists Go uses, and Go's `ToExtensionData` / `GetTransferData`.

use datatransfer_message::{DecodeError, EncodeError, Message};
use graphsync::Extensions;

/// `fil/data-transfer/1.1`: the general-purpose extension (Go's `ExtensionDataTransfer1_1`).
pub const DATA_TRANSFER: &str = "fil/data-transfer/1.1";

/// `fil/data-transfer/incoming-request/1.1`: the responder's answer produced by the
/// incoming-request hook (Go's `ExtensionIncomingRequest1_1`).
pub const INCOMING_REQUEST: &str = "fil/data-transfer/incoming-request/1.1";

/// `fil/data-transfer/outgoing-block/1.1`: a message produced by the outgoing-block hook, such
/// as a payment request (Go's `ExtensionOutgoingBlock1_1`).
pub const OUTGOING_BLOCK: &str = "fil/data-transfer/outgoing-block/1.1";

/// `fil/data-transfer`: the 1.0 extension of go-data-transfer ≤ v1.12. v1.15.1 neither sends
/// nor reads it, and neither does this crate; the name is here so that it is never mistaken
/// for ours.
pub const LEGACY_DATA_TRANSFER: &str = "fil/data-transfer";

/// Go's `supportedExtensions`: what requests, updates and resumes carry, and what the
/// responder's hooks read.
pub const SUPPORTED: &[&str] = &[DATA_TRANSFER];

/// Go's `incomingReqExtensions`: the responder's answer to a request is written under both
/// names; the requester reads the first present.
pub const INCOMING_REQUEST_NAMES: &[&str] = &[INCOMING_REQUEST, DATA_TRANSFER];

/// Go's `outgoingBlkExtensions`: a message attached to an outgoing block is written under both
/// names.
pub const OUTGOING_BLOCK_NAMES: &[&str] = &[OUTGOING_BLOCK, DATA_TRANSFER];

/// Why the data-transfer message of a graphsync message could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The extension is present without a value.
    #[error("extension {name} has no value")]
    NoValue {
        /// The extension name.
        name: &'static str,
    },
    /// The extension's value is not a data-transfer message.
    #[error("extension {name} does not hold a data-transfer message")]
    Decode {
        /// The extension name.
        name: &'static str,
        /// The codec's error.
        #[source]
        source: DecodeError,
    },
}

/// Adds `message` under every name of `names` (Go's `ToExtensionData`): the same node, once
/// per name.
///
/// # Errors
/// [`EncodeError`] when the message cannot be turned into a node.
pub fn insert(
    extensions: &mut Extensions,
    message: &Message,
    names: &[&str],
) -> Result<(), EncodeError> {
    let node = message.to_node()?;
    for name in names {
        extensions.insert(*name, Some(node.clone()));
    }
    Ok(())
}

/// The extensions holding `message` under every name of `names`.
///
/// # Errors
/// [`EncodeError`] when the message cannot be turned into a node.
pub fn extensions(message: &Message, names: &[&str]) -> Result<Extensions, EncodeError> {
    let mut extensions = Extensions::new();
    insert(&mut extensions, message, names)?;
    Ok(extensions)
}

/// Reads the message under the first name of `names` that is present (Go's
/// `GetTransferData`): `Ok(None)` when none is (the graphsync message is not ours), an error
/// when the first present one does not decode (later names are not tried).
///
/// # Errors
/// [`ExtensionError`] for a present extension without a message.
pub fn read(
    extensions: &Extensions,
    names: &[&'static str],
) -> Result<Option<Message>, ExtensionError> {
    for name in names {
        match extensions.get(name) {
            None => continue,
            Some(None) => return Err(ExtensionError::NoValue { name }),
            Some(Some(node)) => {
                return Message::from_node(node)
                    .map(Some)
                    .map_err(|source| ExtensionError::Decode { name, source });
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use datatransfer_message::{TransferId, new_response, update_request};
    use ipld_dagcbor::Node;

    use super::*;

    #[test]
    fn insert_writes_one_entry_per_name_and_read_takes_the_first_present() {
        let accept = Message::from(new_response(TransferId(3), true, false, "".into(), None));
        let ext = extensions(&accept, INCOMING_REQUEST_NAMES).expect("encodes");
        assert_eq!(ext.len(), 2);
        let mut names: Vec<String> = ext
            .iter()
            .map(|(name, _)| String::from_utf8_lossy(name.as_bytes()).into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [DATA_TRANSFER, INCOMING_REQUEST]);
        assert_eq!(
            read(&ext, INCOMING_REQUEST_NAMES).expect("decodes"),
            Some(accept.clone())
        );
        // The plain name alone is what supported-extension readers see.
        assert_eq!(read(&ext, SUPPORTED).expect("decodes"), Some(accept));
    }

    #[test]
    fn the_first_present_name_decides_even_when_it_is_bad() {
        let update = Message::from(update_request(TransferId(1), false));
        let mut ext = extensions(&update, SUPPORTED).expect("encodes");
        ext.insert(INCOMING_REQUEST, Some(Node::Integer(7)));
        assert!(matches!(
            read(&ext, INCOMING_REQUEST_NAMES),
            Err(ExtensionError::Decode {
                name: INCOMING_REQUEST,
                ..
            })
        ));
        ext.insert(INCOMING_REQUEST, None);
        assert!(matches!(
            read(&ext, INCOMING_REQUEST_NAMES),
            Err(ExtensionError::NoValue {
                name: INCOMING_REQUEST
            })
        ));
    }

    #[test]
    fn the_legacy_name_is_not_read() {
        let update = Message::from(update_request(TransferId(1), false));
        let ext = extensions(&update, &[LEGACY_DATA_TRANSFER]).expect("encodes");
        for names in [SUPPORTED, INCOMING_REQUEST_NAMES, OUTGOING_BLOCK_NAMES] {
            assert!(matches!(read(&ext, names), Ok(None)));
        }
    }
}
