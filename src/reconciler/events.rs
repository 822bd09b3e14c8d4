//! Publishing events: one aggregated series per distinct (object, reason, action, note).
//!
//! kube-rs's `Recorder` aggregates by object, type, reason and action but not by note: a
//! repeat with another note only bumps the first event's `series.count`, so five retries read
//! as five of "attempt 1 of 5". Here each distinct note gets its own recorder, hence its own
//! event; only true repeats (same note) become a series.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::decision::Note;

/// Recorders kept before the oldest aggregation state is dropped (a repeat after that starts
/// a new event, which is harmless).
const MAX_SERIES: usize = 4096;

/// Publishes [`Note`]s as events.k8s.io events.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    series: Arc<Mutex<HashMap<SeriesKey, Recorder>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    object: (Option<String>, Option<String>, Option<String>),
    warning: bool,
    reason: &'static str,
    note: String,
}

impl Events {
    /// Events reported as `reporter`.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            series: Arc::default(),
        }
    }

    /// Publish `note` about `reference`: reason and action from the note's [`Reason`](super::conditions::Reason).
    pub async fn publish(
        &self,
        note: &Note,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = SeriesKey {
            object: (
                reference.namespace.clone(),
                reference.name.clone(),
                reference.uid.clone(),
            ),
            warning: note.warning,
            reason: note.reason.as_str(),
            note: note.message.clone(),
        };
        let recorder = {
            let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
            if series.len() >= MAX_SERIES && !series.contains_key(&key) {
                series.clear();
            }
            series
                .entry(key)
                .or_insert_with(|| Recorder::new(self.client.clone(), self.reporter.clone()))
                .clone()
        };
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.as_str().to_owned(),
            note: Some(note.message.clone()),
            action: note.action().to_owned(),
            secondary: None,
        };
        recorder.publish(&event, reference).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciler::conditions::Reason;
    use kube::Api;
    use kube::api::ListParams;
    use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiServer};

    /// Issue 15.6: the aggregated `ResetRetrying` event kept the text of attempt 1
    /// (`series.count: 4`, "attempt 1 of 5"). Each attempt's event now says its own attempt;
    /// only an identical repeat is a series.
    #[tokio::test]
    async fn each_distinct_note_is_its_own_event_and_repeats_aggregate() {
        let kube = KubeApiServer::start(KubeApiConfig::default())
            .await
            .expect("kube sim");
        let client = kube.client().await;
        let events = Events::new(
            client.clone(),
            Reporter {
                controller: "taskreset-controller".into(),
                instance: Some("pod-a".into()),
            },
        );
        let reference = ObjectReference {
            api_version: Some("fdi.roma.io/v1alpha1".into()),
            kind: Some("TaskReset".into()),
            name: Some("a".into()),
            namespace: Some("default".into()),
            uid: Some("uid-a".into()),
            ..ObjectReference::default()
        };
        let note = |n: u32| Note {
            warning: true,
            reason: Reason::RetryScheduled,
            message: format!("attempt {n} of 5 failed (connection refused)"),
        };
        for n in [1, 2, 3, 3] {
            events.publish(&note(n), &reference).await.expect("publish");
        }
        let list: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
        let mut seen: Vec<(String, i32, String, String)> = list
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|e| {
                (
                    e.note.unwrap_or_default(),
                    e.series.map_or(1, |s| s.count),
                    e.reason.unwrap_or_default(),
                    e.action.unwrap_or_default(),
                )
            })
            .collect();
        seen.sort();
        let expect = |n: u32, count: i32| {
            (
                note(n).message,
                count,
                "RetryScheduled".to_owned(),
                "Reset".to_owned(),
            )
        };
        assert_eq!(seen, vec![expect(1, 1), expect(2, 1), expect(3, 2)]);
        kube.shutdown().await;
    }
}
