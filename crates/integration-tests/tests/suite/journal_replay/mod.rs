//! One rank (`mds_locker::runtime::Rank`) journaling through mds-journal onto a device that
//! crashes: what replay rebuilds, and what the completed-request table answers (mds §6.3,
//! §6.6).

mod common;
mod t10_crash_faults;
mod t20_devices;
