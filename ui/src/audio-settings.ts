// The Audio card of Settings: the microphone, output and ring device the desk uses (each saved as
// soon as it is chosen), a test tone and a live microphone meter. The card is one element kept
// across renders and rebuilt only when what it shows changes, so an open list is not disturbed;
// the meter bar is updated in place from `mic_level` events.
import { h } from "./dom";
import { currentLang, t, tCode } from "./i18n";
import { levelPercent } from "./levels";
import type { ApiError, AudioDevice, AudioDevices, AudioSettings, DeviceRole } from "./types";

export interface AudioState {
  devices: AudioDevices | null;
  settings: AudioSettings | null;
  error: ApiError | null;
  /** The test tone was asked for and is playing (about a second). */
  testing: boolean;
}

export interface AudioActions {
  choose(settings: AudioSettings): void;
  testTone(): void;
}

const ROLES: [DeviceRole, string, string][] = [
  ["input", "audio.input", "audio.input_hint"],
  ["output", "audio.output", "audio.output_hint"],
  ["ring", "audio.ring", "audio.ring_hint"],
];

/** How a device id reads on screen: its name when listed; null is the system default. */
export function deviceName(devices: AudioDevices | null, role: DeviceRole, id: string | null): string {
  if (id === null) return t("audio.system_default");
  const list = role === "input" ? devices?.inputs : devices?.outputs;
  return list?.find((d) => d.id === id)?.name ?? id;
}

export class AudioCard {
  readonly el: HTMLElement;
  private readonly body = h("div", {});
  private readonly meter = h(
    "div",
    { id: "mic-level", class: "level", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 },
    h("div", { class: "level-fill" }),
  );
  private shown = "";

  constructor(private readonly act: AudioActions) {
    this.el = h("section", { id: "audio-card", class: "card" }, this.body);
  }

  update(s: AudioState): void {
    const key = JSON.stringify([currentLang(), s]);
    if (key === this.shown) return;
    this.shown = key;
    this.meter.setAttribute("aria-label", t("audio.mic_level"));
    this.body.replaceChildren(
      h("div", { class: "card-head" }, h("div", {}, h("h2", {}, t("audio.title")), h("p", { class: "muted" }, t("audio.subtitle")))),
      s.error ? h("div", { id: "audio-error", class: "banner banner-error", role: "alert" }, tCode("error", s.error.code)) : "",
      h("div", { class: "audio-grid" }, ROLES.map(([role, label, hint]) => this.field(s, role, label, hint))),
      h(
        "div",
        { class: "audio-check" },
        h(
          "button",
          { id: "audio-test-tone", class: "btn", type: "button", disabled: s.testing || !s.settings, onclick: () => this.act.testTone() },
          h("span", { class: "icon icon-speaker", "aria-hidden": "true" }),
          t(s.testing ? "audio.test_tone_playing" : "audio.test_tone"),
        ),
        h("div", { class: "level-row mic-row" }, h("span", { class: "level-label" }, t("audio.mic_level")), this.meter),
      ),
    );
  }

  /** Shows the microphone's level (null: nothing yet). */
  showMicLevel(dbfs: number | null): void {
    const pct = dbfs === null ? 0 : levelPercent(dbfs);
    this.meter.setAttribute("aria-valuenow", String(pct));
    this.meter.dataset.dbfs = dbfs === null ? "" : dbfs.toFixed(1);
    const fill = this.meter.querySelector<HTMLElement>(".level-fill");
    // Through the CSSOM: the content security policy refuses inline style attributes.
    if (fill) fill.style.width = `${pct}%`;
  }

  private field(s: AudioState, role: DeviceRole, label: string, hint: string): HTMLElement {
    const list: AudioDevice[] = (role === "input" ? s.devices?.inputs : s.devices?.outputs) ?? [];
    const chosen = s.settings?.[role] ?? null;
    const fallback = role === "input" ? s.devices?.default_input : s.devices?.default_output;
    const systemLabel = fallback ? t("audio.system_default_named", { name: deviceName(s.devices, role, fallback) }) : t("audio.system_default");
    // A saved device that is not connected now stays visible, marked, rather than silently replaced.
    const missing = chosen !== null && !list.some((d) => d.id === chosen);
    const id = `audio-${role}`;
    const select = h(
      "select",
      {
        id,
        disabled: !s.settings || !s.devices,
        onchange: (ev) => {
          if (!s.settings) return;
          const value = (ev.target as HTMLSelectElement).value;
          this.act.choose({ ...s.settings, [role]: value === "" ? null : value });
        },
      },
      h("option", { value: "", selected: chosen === null }, systemLabel),
      list.map((d) => h("option", { value: d.id, selected: d.id === chosen }, d.name)),
      missing ? h("option", { value: chosen, selected: true }, t("audio.not_connected", { name: chosen })) : null,
    );
    return h("div", { class: "field" }, h("label", { for: id }, t(label)), select, h("div", { class: "hint" }, t(hint)));
  }
}
