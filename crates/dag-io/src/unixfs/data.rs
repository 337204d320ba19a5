//! The UnixFS `Data` protobuf message (proto2), derived by hand with prost.

/// `Data.DataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataType {
    Raw = 0,
    Directory = 1,
    File = 2,
    Metadata = 3,
    Symlink = 4,
    HamtShard = 5,
}

impl DataType {
    pub(crate) fn from_i32(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::Raw,
            1 => Self::Directory,
            2 => Self::File,
            3 => Self::Metadata,
            4 => Self::Symlink,
            5 => Self::HamtShard,
            _ => return None,
        })
    }
}

/// The UnixFS `Data` message. Field order and labels follow `unixfs.proto`; `blocksizes` is a
/// proto2 repeated field and so is not packed.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Data {
    #[prost(int32, required, tag = "1")]
    pub(crate) r#type: i32,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(crate) data: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "3")]
    pub(crate) filesize: Option<u64>,
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub(crate) blocksizes: Vec<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub(crate) hash_type: Option<u64>,
    #[prost(uint64, optional, tag = "6")]
    pub(crate) fanout: Option<u64>,
    #[prost(uint32, optional, tag = "7")]
    pub(crate) mode: Option<u32>,
    #[prost(message, optional, tag = "8")]
    pub(crate) mtime: Option<UnixTime>,
}

/// The UnixFS `UnixTime` message.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct UnixTime {
    #[prost(int64, required, tag = "1")]
    pub(crate) seconds: i64,
    #[prost(fixed32, optional, tag = "2")]
    pub(crate) fractional_nanoseconds: Option<u32>,
}

impl Data {
    /// A `Data` of the given type with every optional field absent.
    pub(crate) fn of(kind: DataType) -> Self {
        Self {
            r#type: kind as i32,
            ..Self::default()
        }
    }

    pub(crate) fn kind(&self) -> Option<DataType> {
        DataType::from_i32(self.r#type)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn file_node_fields_encode_in_tag_order_unpacked() {
        let data = Data {
            filesize: Some(300),
            blocksizes: vec![200, 100],
            ..Data::of(DataType::File)
        };
        assert_eq!(
            data.encode_to_vec(),
            [0x08, 0x02, 0x18, 0xac, 0x02, 0x20, 0xc8, 0x01, 0x20, 0x64]
        );
        assert_eq!(Data::decode(&data.encode_to_vec()[..]).unwrap(), data);
    }

    #[test]
    fn directory_is_two_bytes() {
        assert_eq!(Data::of(DataType::Directory).encode_to_vec(), [0x08, 0x01]);
    }
}
