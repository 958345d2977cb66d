// vmd's event stream (`GET /api/v1/events`, SSE). EventSource reconnects by itself after a
// network error and resumes with Last-Event-ID; `onOpen` runs on every (re)connection so the
// page can re-read what it shows. An error answer (e.g. 401 once the session has ended)
// closes the EventSource for good: `onClosed` decides what then.

/** Subscribes; returns the EventSource (close() it to stop). */
export function subscribe(onEvent, onOpen, onClosed) {
  const source = new EventSource("/api/v1/events");
  source.onopen = () => onOpen();
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) onClosed();
  };
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
