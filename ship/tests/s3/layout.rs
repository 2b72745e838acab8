//! The remote layout's trials (`../local/layout_trials.rs`) on each S3 server: two nodes at
//! once losing nothing in 20 trials, two shippers with the same node name refused, a torn,
//! deleted or stale node index worked around and repaired, lost entries and objects shipped
//! again, the legacy index migrated with its holds. s3rver ignores conditional requests: the
//! layout must not need them.

use crate::layout_trials::{self, Opener};
use crate::support::s3::{s3_test, Server};

s3_test!(
    s3_two_shippers_of_different_nodes_lose_nothing_in_20_trials,
    s3_two_shippers_with_the_same_node_name_are_refused,
    s3_a_torn_deleted_or_stale_node_index_is_worked_around_and_repaired,
    s3_lost_index_entries_and_lost_objects_are_shipped_again,
    s3_a_legacy_index_is_migrated_with_its_holds,
);

/// A new bucket for each location.
fn fresh<'a>(server: &'a Server, tag: &'static str) -> impl Fn() -> Opener + 'a {
    move || {
        let bucket = server.bucket(tag);
        let server = server.clone();
        Box::new(move || server.remote(&format!("{bucket}/cluster")))
    }
}

fn s3_two_shippers_of_different_nodes_lose_nothing_in_20_trials(server: &Server) {
    layout_trials::two_nodes_lose_nothing(&fresh(server, "two"), 20);
}

fn s3_two_shippers_with_the_same_node_name_are_refused(server: &Server) {
    layout_trials::same_node_is_refused(&fresh(server, "same"));
}

fn s3_a_torn_deleted_or_stale_node_index_is_worked_around_and_repaired(server: &Server) {
    layout_trials::a_torn_deleted_or_stale_index_is_worked_around_and_repaired(&fresh(
        server, "torn",
    ));
}

fn s3_lost_index_entries_and_lost_objects_are_shipped_again(server: &Server) {
    layout_trials::lost_entries_and_lost_objects_are_shipped_again(&fresh(server, "lost"));
}

fn s3_a_legacy_index_is_migrated_with_its_holds(server: &Server) {
    layout_trials::a_legacy_index_migrates_with_its_holds(&fresh(server, "legacy"));
}
