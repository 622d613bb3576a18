// The call history card: one row per call, newest first, each with a call-back button. Calls the
// AI assistant had are marked; the party's name opens the call's details (history-detail.ts):
// for those calls, the assistant's summary and the saved transcript.
import { clock, startedAt } from "./call-format";
import { h } from "./dom";
import { aiChip, aiHandled, openDetail, renderOpenDetail } from "./history-detail";
import { t, tCode } from "./i18n";
import type { ApiError, CallRecord } from "./types";

export interface HistoryState {
  /** Null until the core's first answer. */
  records: CallRecord[] | null;
  /** Call ids of the calls still going: their rows have no end yet and are not interrupted. */
  live: Set<string>;
  error: ApiError | null;
}

export function renderHistory(s: HistoryState, callBack: (r: CallRecord) => void): HTMLElement {
  const card = h(
    "section",
    { id: "history-card", class: "card history-card" },
    h("div", { class: "card-head" }, h("div", {}, h("h2", {}, t("history.title")), h("p", { class: "muted" }, t("history.subtitle")))),
    s.error ? h("div", { id: "history-error", class: "banner banner-error", role: "alert" }, tCode("error", s.error.code)) : null,
    s.records === null
      ? h("p", { class: "muted" }, t("app.loading"))
      : h(
          "div",
          { id: "history", class: "history" },
          s.records.length
            ? [
                h(
                  "div",
                  { class: "history-head" },
                  h("span", {}),
                  h("span", {}, t("history.col.party")),
                  h("span", {}, t("history.col.started")),
                  h("span", { class: "num" }, t("history.col.duration")),
                  h("span", {}, t("history.col.result")),
                  h("span", {}),
                ),
                h("div", { class: "history-rows" }, s.records.map((r) => row(r, s.live.has(r.call_id), callBack))),
              ]
            : h("div", { id: "history-empty", class: "empty" }, h("p", { class: "empty-title" }, t("history.empty"))),
        ),
  );
  // The call whose details are open stays open across rebuilds of the card.
  const detail = renderOpenDetail(s.records, s.live);
  if (detail) card.append(detail);
  return card;
}

/** The row's icon: outgoing, incoming, or incoming and never answered (not while it still rings). */
function kind(r: CallRecord, live: boolean): [string, string] {
  if (r.direction === "out") return ["out", "history.outgoing"];
  return r.answered_at || live ? ["in", "history.incoming"] : ["missed", "history.missed"];
}

function result(r: CallRecord, live: boolean): [string, string] {
  // A caller turned away because two calls were up: busy here, not the far end.
  if (r.end_reason === "busy" && r.direction === "in") return ["fail", t("history.busy_in")];
  if (r.end_reason !== null) return [r.answered_at ? "ok" : "fail", tCode("call.reason", r.end_reason)];
  return live ? ["live", t("history.live")] : ["fail", t("history.interrupted")];
}

function row(r: CallRecord, live: boolean, callBack: (r: CallRecord) => void): HTMLElement {
  const [icon, iconLabel] = kind(r, live);
  const [resultClass, resultText] = result(r, live);
  const ai = aiHandled(r);
  const party = r.display_name || r.remote;
  return h(
    "div",
    {
      class: `history-row dir-${r.direction}${ai ? " with-ai" : ""}`,
      "data-call-id": r.call_id,
      "data-reason": r.end_reason ?? (live ? "live" : "interrupted"),
      "data-ai": ai ? "true" : "false",
    },
    h("span", { class: `history-icon icon-${icon}`, title: t(iconLabel), role: "img", "aria-label": t(iconLabel) }, h("span", { class: `icon icon-call-${icon}` })),
    h(
      "button",
      {
        class: "history-party history-open",
        type: "button",
        "aria-haspopup": "dialog",
        title: t(ai ? "history.details_ai" : "history.details"),
        "aria-label": t(ai ? "history.open_ai" : "history.open", { party }),
        onclick: (ev: Event) => {
          const el = ev.currentTarget as HTMLElement;
          openDetail(r, live, callBack, el.closest("#history-card"));
        },
      },
      h("span", { class: "history-name" }, party),
      r.display_name ? h("span", { class: "history-uri" }, r.remote) : null,
    ),
    h("span", { class: "history-started" }, startedAt(r.started_at)),
    h("span", { class: "history-duration num" }, r.answered_at && r.duration_s !== null ? clock(r.duration_s) : t("history.no_duration")),
    h(
      "span",
      { class: "history-outcome" },
      h("span", { class: `history-result result-${resultClass}` }, resultText),
      ai ? aiChip() : null,
    ),
    h(
      "span",
      { class: "history-actions" },
      h(
        "button",
        { class: "btn history-callback", type: "button", title: t("history.callback"), "aria-label": t("history.callback"), onclick: () => callBack(r) },
        h("span", { class: "icon icon-phone", "aria-hidden": "true" }),
      ),
    ),
  );
}
