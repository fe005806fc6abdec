//! Bad input at open gets a typed error that says what is wrong: a bad config, foreign or
//! damaged metadata, a wrong format version, a config that does not match the files, segment
//! files without metadata.

mod common;

use ballast_log::format::{Metadata, FORMAT_VERSION};
use ballast_log::storage::{AlignedBuffer, MemStorage, Storage};
use ballast_log::{Config, Error, Log};
use common::config_small;

fn storage_with_metadata(bytes: &[u8]) -> MemStorage {
    let mut storage = MemStorage::new(4096);
    let mut buffer = AlignedBuffer::new(4096, 4096);
    buffer[..bytes.len()].copy_from_slice(bytes);
    storage.metadata_write(&buffer).unwrap();
    storage
}

fn metadata_bytes(metadata: Metadata) -> Vec<u8> {
    let mut bytes = vec![0; 4096];
    metadata.encode(&mut bytes);
    bytes
}

fn metadata_of(config: &Config) -> Metadata {
    Metadata::new(
        config.sector_size_bytes,
        config.block_size_bytes,
        config.segment_size_bytes,
    )
}

#[test]
fn invalid_config_names_the_field() {
    let config = Config {
        write_buffer_count: 0,
        ..config_small()
    };
    match Log::open(config, MemStorage::new(4096)) {
        Err(Error::Config(error)) => assert_eq!(error.field, "write_buffer_count"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn foreign_metadata_is_not_a_log() {
    let storage = storage_with_metadata(b"#!/bin/sh\necho hello\n");
    match Log::open(config_small(), storage) {
        Err(Error::NotALog { reason }) => assert!(reason.contains("magic"), "{reason}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn wrong_format_version_is_reported() {
    let config = config_small();
    let metadata = Metadata {
        format_version: FORMAT_VERSION + 1,
        ..metadata_of(&config)
    };
    match Log::open(config, storage_with_metadata(&metadata_bytes(metadata))) {
        Err(Error::FormatVersion { found, supported }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn config_that_does_not_match_the_files_names_the_field() {
    let config = config_small();
    let storage = Log::open(config.clone(), MemStorage::new(4096))
        .unwrap()
        .close()
        .unwrap();
    let cases = [
        (
            "block_size_bytes",
            Config {
                block_size_bytes: 16384,
                write_buffer_size_bytes: 16384,
                ..config.clone()
            },
        ),
        (
            "segment_size_bytes",
            Config {
                segment_size_bytes: 512 * 1024,
                ..config.clone()
            },
        ),
        (
            "sector_size_bytes",
            Config {
                sector_size_bytes: 8192,
                ..config.clone()
            },
        ),
    ];
    for (field, other) in cases {
        match Log::open(other, storage.snapshot()) {
            Err(Error::ConfigMismatch { field: found, .. }) => assert_eq!(found, field),
            result => panic!("{field}: {:?}", result.map(|_| ())),
        }
    }
}

#[test]
fn segments_without_metadata_are_refused() {
    let mut storage = MemStorage::new(4096);
    storage.segment_create(0, 256 * 1024).unwrap();
    match Log::open(config_small(), storage) {
        Err(Error::MetadataMissing { segment_count }) => assert_eq!(segment_count, 1),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn storage_with_larger_sectors_than_the_config_is_refused() {
    let config = Config {
        sector_size_bytes: 512,
        block_size_bytes: 4096,
        ..config_small()
    };
    match Log::open(config, MemStorage::new(4096)) {
        Err(Error::ConfigMismatch {
            field,
            config,
            disk,
        }) => {
            assert_eq!((field, config, disk), ("sector_size_bytes", 512, 4096));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}
