//! Power cuts in disk mode, in the style of ALICE and CrashMonkey: each workload runs on real
//! `O_DIRECT` files with the file-system trace on; a conservative persistence model computes
//! what the disk may hold after a power cut at points of the trace (writes not yet synced lost
//! or torn at 512-byte sectors, directory operations not yet synced undone); and each such
//! state is written out, opened as the next process would open it, and checked: every
//! acknowledged record there, byte for byte; no `Corruption`, no panic; nothing past them but
//! records that were appended; appends that work and survive a second power cut.
//!
//! `docs/crash-consistency.md` has the model, what is covered and how to reproduce a failure.
//! `BALLAST_EXPLORE_STATES=N` checks more states (the default is about a minute of the debug
//! build); a failure prints one `BALLAST_EXPLORE=...` command that checks exactly that state.
//!
//! Tracing is process-wide, so the workloads run one at a time, under one lock.
#![cfg(target_os = "linux")]

mod crash_common;
mod disk_common;

use crash_common::explore::{explore, Settings};
use crash_common::workloads::Workload;
use std::sync::Mutex;

static TRACING: Mutex<()> = Mutex::new(());

fn explore_alone(workload: Workload) {
    let _alone = TRACING.lock().unwrap_or_else(|poison| poison.into_inner());
    explore(workload, &Settings::from_environment());
}

#[test]
fn single_appends_survive_power_cuts() {
    explore_alone(Workload::Single);
}

#[test]
fn bulk_appends_survive_power_cuts() {
    explore_alone(Workload::Bulk);
}

#[test]
fn shared_producers_survive_power_cuts() {
    explore_alone(Workload::Shared);
}

#[test]
fn truncate_prefix_survives_power_cuts() {
    explore_alone(Workload::Truncate);
}

#[test]
fn reopen_after_a_crash_survives_power_cuts() {
    explore_alone(Workload::Reopen);
}

#[test]
fn truncate_suffix_survives_power_cuts() {
    explore_alone(Workload::Suffix);
}

/// The model's rules, checked on small traces made by hand.
mod model_rules {
    use super::crash_common::model::Model;
    use super::crash_common::states::{crash_state, exhaustive, StateSpec};
    use ballast_log::storage::trace::{Call, Event, FileId};

    const DIR: FileId = FileId { dev: 1, ino: 1 };

    fn event(call: Call) -> Event {
        Event {
            thread: 1,
            call,
            result: Ok(()),
        }
    }

    fn file(ino: u64) -> FileId {
        FileId { dev: 1, ino }
    }

    fn open_created(name: &str, ino: u64) -> Event {
        event(Call::Open {
            dir: DIR,
            name: name.into(),
            flags: libc::O_CREAT | libc::O_RDWR,
            file: file(ino),
            created: true,
        })
    }

    fn write(ino: u64, offset_bytes: u64, byte: u8, size: usize) -> Event {
        event(Call::Write {
            file: file(ino),
            offset_bytes,
            bytes: vec![byte; size],
        })
    }

    fn sync(ino: u64, data_only: bool) -> Event {
        event(Call::Sync {
            file: file(ino),
            data_only,
        })
    }

    fn replay(events: &[Event]) -> Model {
        let mut model = Model::new();
        model.apply(&event(Call::OpenDir {
            path: "/log".into(),
            dir: DIR,
            created: false,
        }));
        events.iter().for_each(|event| model.apply(event));
        model
    }

    #[test]
    fn unsynced_names_and_bytes_may_vanish_and_synced_ones_stay() {
        let model = replay(&[open_created("a", 2), write(2, 0, 7, 1024)]);
        let lost = crash_state(&model, StateSpec::Lost);
        assert!(lost.files.is_empty(), "the create is undone");
        let kept = crash_state(&model, StateSpec::Kept);
        assert_eq!(kept.files["a"], vec![7; 1024]);
        // Two sectors and one create: the create can be lost alone, not the sectors without it
        // mattering; every combination is enumerated.
        let all = exhaustive(&model, 64).expect("few states");
        assert_eq!(all.len(), 2 * 4);

        let model = replay(&[
            open_created("a", 2),
            write(2, 0, 7, 1024),
            sync(2, false),
            sync(DIR.ino, false),
        ]);
        assert_eq!(
            crash_state(&model, StateSpec::Lost).files["a"],
            vec![7; 1024]
        );
    }

    #[test]
    fn a_rename_is_undone_with_the_create_it_depends_on() {
        let model = replay(&[
            open_created("a.tmp", 2),
            write(2, 0, 1, 512),
            sync(2, false),
            event(Call::Rename {
                dir: DIR,
                from: "a.tmp".into(),
                to: "a".into(),
            }),
            open_created("b", 3),
        ]);
        let all = exhaustive(&model, 64).expect("few states");
        let names: std::collections::BTreeSet<Vec<String>> = all
            .iter()
            .map(|&spec| crash_state(&model, spec).files.keys().cloned().collect())
            .collect();
        let expected: std::collections::BTreeSet<Vec<String>> = [
            vec![],
            vec!["a.tmp".to_string()],
            vec!["a".to_string()],
            vec!["b".to_string()],
            vec!["a.tmp".to_string(), "b".to_string()],
            vec!["a".to_string(), "b".to_string()],
        ]
        .into_iter()
        .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn fdatasync_keeps_the_data_but_not_a_preallocated_size() {
        let model = replay(&[
            open_created("s", 2),
            event(Call::SetSize {
                file: file(2),
                size_bytes: 8192,
            }),
            write(2, 0, 5, 1024),
            sync(2, true),
            sync(DIR.ino, false),
        ]);
        assert_eq!(
            crash_state(&model, StateSpec::Lost).files["s"],
            vec![5; 1024]
        );
        let kept = crash_state(&model, StateSpec::Kept);
        assert_eq!(kept.files["s"].len(), 8192);
    }

    #[test]
    fn saved_traces_read_back_the_same() {
        use super::crash_common::trace_file;
        use super::crash_common::workloads::Generation;
        let trace = vec![
            open_created("a", 2),
            write(2, 512, 9, 100),
            event(Call::SetSize {
                file: file(2),
                size_bytes: 4096,
            }),
            sync(2, true),
            event(Call::Rename {
                dir: DIR,
                from: "a".into(),
                to: "b".into(),
            }),
            event(Call::Unlink {
                dir: DIR,
                name: "b".into(),
            }),
            event(Call::Flock { file: file(2) }),
            event(Call::Acknowledged { lsn_durable: 7 }),
            Event {
                thread: 3,
                call: Call::Sync {
                    file: DIR,
                    data_only: false,
                },
                result: Err(libc::EIO),
            },
        ];
        let generations = vec![Generation {
            begin_event: 7,
            tag: 1,
            lsn_start: 0,
            keys: vec![0, 1, 2],
        }];
        let dir = super::disk_common::ScratchDir::new("crash-trace-file");
        let path = dir.path().join("trace");
        trace_file::save(&path, &trace, &generations).unwrap();
        assert_eq!(trace_file::load(&path), (trace, generations));
    }

    #[test]
    fn a_torn_sector_holds_new_bytes_then_old_ones_or_garbage() {
        let model = replay(&[
            open_created("a", 2),
            write(2, 0, 1, 4096),
            sync(2, false),
            sync(DIR.ino, false),
            write(2, 0, 2, 4096),
        ]);
        let mut torn = 0;
        for seed in 0..200 {
            let bytes = &crash_state(&model, StateSpec::Sample(seed)).files["a"];
            assert_eq!(bytes.len(), 4096);
            for sector in bytes.chunks(512) {
                let new = sector.iter().take_while(|&&byte| byte == 2).count();
                let rest = &sector[new..];
                if rest.iter().all(|&byte| byte == 1) && (new == 0 || new == 512) {
                    continue;
                }
                torn += 1;
            }
        }
        assert!(torn > 0, "some samples tear a sector");
    }
}
