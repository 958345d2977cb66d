// vmd's event stream (`GET /api/v1/events`, SSE). EventSource reconnects by itself and
// resumes with Last-Event-ID; `onOpen` runs on every (re)connection so the page can
// re-read what it shows.

/** Subscribes; returns the EventSource (close() it to stop). */
export function subscribe(onEvent, onOpen) {
  const source = new EventSource("/api/v1/events");
  source.onopen = () => onOpen();
  source.onmessage = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    onEvent(event);
  };
  return source;
}
