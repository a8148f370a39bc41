//! The MDS seed stories on two ranks (mds §5.2 multi-MDS notes, §4.13, §4.17, §6.1), checked
//! through the journal events each rank wrote (mds-locker and mds-journal together).

mod t10_two_rank_story;
