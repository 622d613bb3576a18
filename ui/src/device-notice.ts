// The notice shown when an audio device could not be used (core `device` events): which device,
// what is used instead, until the agent closes it or another notice replaces it.
import { deviceName } from "./audio-settings";
import { h } from "./dom";
import { t } from "./i18n";
import type { AudioDevices, DeviceEvent, DeviceRole } from "./types";

const ROLES: Record<DeviceRole, string> = { input: "device.role.input", output: "device.role.output", ring: "device.role.ring" };
const REASONS: Record<DeviceEvent["reason"], string> = {
  not_found: "device.reason.not_found",
  open_failed: "device.reason.open_failed",
  lost: "device.reason.lost",
  recovered: "device.reason.recovered",
  unavailable: "device.none",
};

/** The notice's sentence for `e`; device ids read as names when the list is known. */
export function noticeText(e: DeviceEvent, devices: AudioDevices | null): string {
  const vars = {
    role: t(ROLES[e.direction] ?? "device.role.output"),
    wanted: deviceName(devices, e.direction, e.wanted),
    used: deviceName(devices, e.direction, e.used),
  };
  // Nothing could be opened (`unavailable` always ends here): the audio is silent.
  if (e.used === null) return t(e.wanted === null ? "device.none_default" : "device.none", vars);
  return t(REASONS[e.reason] ?? "device.reason.lost", vars);
}

export function renderDeviceNotice(e: DeviceEvent, devices: AudioDevices | null, close: () => void): HTMLElement {
  return h(
    "div",
    { id: "device-notice", class: "banner banner-warn notice", role: "status", "data-reason": e.reason },
    h("span", { class: "icon icon-speaker", "aria-hidden": "true" }),
    h("span", { class: "notice-text" }, noticeText(e, devices)),
    h("button", { id: "device-notice-close", class: "btn btn-small", type: "button", onclick: close }, t("device.dismiss")),
  );
}
