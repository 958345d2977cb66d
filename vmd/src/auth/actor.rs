//! The account on whose behalf the current request runs, so that every event recorded while
//! serving it names its actor without threading the caller through every function. Work vmd
//! does on its own (QEMU exits, guest resets, expiry, adoption) runs outside any scope and
//! records no actor.

use std::future::Future;

use super::Subject;

tokio::task_local! {
    static ACTOR: Option<String>;
}

/// Runs `fut` with `subject` as the actor of the events it records.
pub async fn scope<F: Future>(subject: &Subject, fut: F) -> F::Output {
    let name = (!subject.is_daemon()).then(|| subject.name.clone());
    ACTOR.scope(name, fut).await
}

/// The actor of the current task, if any.
pub fn current() -> Option<String> {
    ACTOR.try_with(Clone::clone).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn actor_is_scoped_to_the_request() {
        assert_eq!(current(), None);
        let mut ann = Subject::daemon();
        (ann.user_id, ann.name) = (7, "ann".into());
        assert_eq!(
            scope(&ann, async { current() }).await.as_deref(),
            Some("ann")
        );
        assert_eq!(scope(&Subject::daemon(), async { current() }).await, None);
        let spawned = scope(&ann, async { tokio::spawn(async { current() }).await }).await;
        assert_eq!(
            spawned.ok().flatten(),
            None,
            "spawned tasks act on their own"
        );
    }
}
