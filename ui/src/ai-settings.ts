// The "AI assistant" card of Settings: the voice agent providers (the offline assistant; the cloud
// ones shown disabled until an administrator enables them) with their endpoint, key, voice,
// instructions, greeting and language, and the supervisors' policy (whether agents may hand calls
// to the AI; when the AI answers incoming calls by itself; the working hours).
//
// The card is one element kept across renders and rebuilt only when what the core holds changed
// (or the language), so typing is never disturbed. Keys never enter the DOM: the key box is always
// empty (its placeholder says whether one is stored) and is emptied again once saved. The core
// validates everything; the card only shows its field codes.
import type { Backend } from "./backend";
import { toApiError } from "./backend";
import { h } from "./dom";
import { currentLang, t, tCode } from "./i18n";
import type { AiAgentDraft, AiAgentView, AiPolicy, AiPolicyDraft, AiProvider, ApiError } from "./types";

const NAMES: Record<AiProvider, string> = {
  local: "ai.provider.local",
  openai: "ai.provider.openai",
  doubao: "ai.provider.doubao",
};

const DESCRIPTIONS: Record<AiProvider, string> = {
  local: "ai.desc.local",
  openai: "ai.desc.openai",
  doubao: "ai.desc.doubao",
};

/** The answer modes of the policy; `after` takes its seconds from the box beside it. */
const ANSWERS: [string, string][] = [
  ["never", "ai.policy.answer_never"],
  ["always", "ai.policy.answer_always"],
  ["after", "ai.policy.answer_after"],
  ["outside_hours", "ai.policy.answer_outside_hours"],
];

const DAYS: [string, string][] = [
  ["mon", "ai.day.mon"],
  ["tue", "ai.day.tue"],
  ["wed", "ai.day.wed"],
  ["thu", "ai.day.thu"],
  ["fri", "ai.day.fri"],
  ["sat", "ai.day.sat"],
  ["sun", "ai.day.sun"],
];

/** The seconds shown for `after` when the saved answer is something else. */
const DEFAULT_AFTER_S = "20";

type AgentField = "endpoint" | "app_id" | "api_key" | "voice" | "language" | "greeting" | "instructions";

/** Which fields each provider shows, with their label key and grid span. */
function layout(a: AiAgentView): [AgentField, string, number][] {
  if (a.provider === "local") return [["greeting", "ai.field.greeting", 6]];
  const rows: [AgentField, string, number][] = [
    ["endpoint", "ai.field.endpoint", 4],
    ["language", "ai.field.language", 2],
  ];
  if (a.provider === "doubao") {
    rows.push(["app_id", "ai.field.app_id", 2], ["api_key", "ai.field.access_key", 2], ["voice", "ai.field.voice", 2]);
  } else {
    rows.push(["api_key", "ai.field.api_key", 3], ["voice", "ai.field.voice", 3]);
  }
  rows.push(["greeting", "ai.field.greeting", 6], ["instructions", "ai.field.instructions", 6]);
  return rows;
}

/** DOM ids: `ai-openai-endpoint`, error slots `ai-openai-err-endpoint`. */
const fieldId = (p: AiProvider, f: string) => `ai-${p}-${f}`;
const policyErrId = (field: string) => `ai-policy-err-${field.replace(".", "-")}`;

export class AiSettingsCard {
  readonly el: HTMLElement;
  private agents: AiAgentView[] | null = null;
  private policy: AiPolicy | null = null;
  private loadError: ApiError | null = null;
  /** What the card shows now; a load that brings the same is not rebuilt. */
  private shown = "";
  private readonly forms = new Map<AiProvider, HTMLFormElement>();

  constructor(private readonly backend: Backend) {
    this.el = h("section", { id: "ai-card", class: "card" });
  }

  /** Re-reads the providers and the policy; rebuilds the card if they changed. */
  async load(): Promise<void> {
    const [agents, policy] = await Promise.allSettled([this.backend.aiAgentsList(), this.backend.aiPolicyGet()]);
    this.loadError = null;
    if (agents.status === "fulfilled") this.agents = agents.value;
    else this.loadError = toApiError(agents.reason);
    if (policy.status === "fulfilled") this.policy = policy.value;
    else this.loadError = toApiError(policy.reason);
    this.render();
  }

  /** Called on every render of the app: rebuilds only when the language changed. */
  update(): void {
    this.render();
  }

  private render(force = false): void {
    const key = JSON.stringify([currentLang(), this.agents, this.policy, this.loadError?.code]);
    if (key === this.shown && !force) return;
    this.shown = key;
    this.forms.clear();
    this.el.replaceChildren(
      h("div", { class: "card-head" }, h("div", {}, h("h2", {}, t("ai.title")), h("p", { class: "muted" }, t("ai.subtitle")))),
      this.loadError ? h("div", { id: "ai-load-error", class: "banner banner-error", role: "alert" }, tCode("error", this.loadError.code)) : "",
      this.agents ? h("div", { id: "ai-providers", class: "ai-providers" }, h("h3", {}, t("ai.providers")), this.agents.map((a) => this.agentBlock(a))) : "",
      this.policy ? this.policyBlock(this.policy) : "",
    );
  }

  private agentBlock(a: AiAgentView): HTMLElement {
    // A cloud provider an administrator has not enabled is shown, read-only.
    const locked = !a.enabled;
    const form = h(
      "form",
      { id: `ai-form-${a.provider}`, class: "ai-form", novalidate: true, autocomplete: "off" },
      h(
        "fieldset",
        { disabled: locked },
        h("div", { class: "form-grid" }, layout(a).map(([f, label, span]) => this.field(a, f, label, span))),
      ),
      h("div", { id: `ai-error-${a.provider}`, class: "banner banner-error hidden", role: "alert" }),
      h(
        "div",
        { class: "ai-actions" },
        h("span", { id: `ai-saved-${a.provider}`, class: "ai-saved hidden", role: "status" }, t("ai.saved")),
        a.enabled && !a.is_default
          ? h("button", { id: `ai-default-${a.provider}`, class: "btn btn-small", type: "button", onclick: () => void this.makeDefault(a) }, t("ai.make_default"))
          : null,
        h("button", { id: `ai-save-${a.provider}`, class: "btn btn-primary btn-small", type: "submit", disabled: locked }, t("ai.save")),
      ),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.saveAgent(a, form);
    });
    this.forms.set(a.provider, form);
    // Enabled providers are open; a locked one shows its head and opens on a click, read-only.
    return h(
      "details",
      {
        id: `ai-provider-${a.provider}`,
        class: `ai-provider${locked ? " ai-locked" : ""}`,
        "data-enabled": String(a.enabled),
        open: a.enabled,
      },
      h(
        "summary",
        { class: "ai-provider-head" },
        h("span", { class: "ai-provider-name" }, t(NAMES[a.provider])),
        h("span", { class: `badge ${a.enabled ? "badge-on" : "badge-off"}` }, t(a.enabled ? "ai.enabled" : "ai.disabled")),
        a.is_default ? h("span", { id: `ai-default-badge-${a.provider}`, class: "badge badge-default" }, t("ai.default")) : null,
        h("span", { class: "muted small ai-provider-desc" }, t(DESCRIPTIONS[a.provider])),
        locked ? h("div", { id: `ai-locked-${a.provider}`, class: "hint ai-locked-note" }, t("ai.locked", { provider: a.provider })) : null,
      ),
      a.provider === "local" ? h("div", { class: "hint ai-local-note" }, t("ai.local_note")) : null,
      form,
    );
  }

  private field(a: AiAgentView, f: AgentField, label: string, span: number): HTMLElement {
    const id = fieldId(a.provider, f);
    const err = fieldId(a.provider, `err-${f}`);
    let control: HTMLInputElement | HTMLTextAreaElement;
    if (f === "api_key") {
      // Never filled from the core: the stored key stays there.
      control = h("input", {
        id,
        type: "password",
        autocomplete: "new-password",
        spellcheck: "false",
        placeholder: t(a.api_key_set ? "ai.key_placeholder_set" : "ai.key_placeholder_none"),
        "aria-describedby": `${fieldId(a.provider, "key-state")} ${err}`,
      });
    } else if (f === "instructions") {
      control = h("textarea", { id, rows: 2, spellcheck: "false", "aria-describedby": `${fieldId(a.provider, "hint-instructions")} ${err}` });
      control.value = a.instructions;
    } else {
      const placeholder = f === "language" ? t("ai.language_default") : f === "greeting" ? t("ai.greeting_default") : null;
      control = h("input", { id, type: "text", spellcheck: "false", autocapitalize: "off", placeholder, "aria-describedby": err });
      control.value = a[f];
    }
    return h(
      "div",
      { class: `field span-${span}` },
      h("label", { for: id }, t(label)),
      control,
      f === "api_key"
        ? h("div", { id: fieldId(a.provider, "key-state"), class: "hint" }, t(a.api_key_set ? "ai.key_set" : "ai.key_none"))
        : null,
      f === "instructions" ? h("div", { id: fieldId(a.provider, "hint-instructions"), class: "hint" }, t("ai.instructions_hint")) : null,
      h("div", { id: err, class: "field-error" }),
    );
  }

  /** The edit the form holds: every field shown; an empty key box keeps the stored key. */
  private draft(a: AiAgentView, form: HTMLFormElement): AiAgentDraft {
    const draft: AiAgentDraft = {};
    for (const [f] of layout(a)) {
      const el = form.querySelector<HTMLInputElement | HTMLTextAreaElement>(`#${fieldId(a.provider, f)}`);
      if (!el) continue;
      if (f === "api_key") draft.api_key = el.value === "" ? null : el.value;
      else draft[f] = el.value;
    }
    return draft;
  }

  private async saveAgent(a: AiAgentView, form: HTMLFormElement): Promise<void> {
    const button = form.querySelector<HTMLButtonElement>(`#ai-save-${a.provider}`);
    if (button) button.disabled = true;
    this.showAgentError(a, form, null);
    form.querySelector(`#ai-saved-${a.provider}`)?.classList.add("hidden");
    try {
      const saved = await this.backend.aiAgentUpdate(a.id, this.draft(a, form));
      this.agents = (this.agents ?? []).map((x) => (x.id === saved.id ? saved : x));
      // Rebuilt from what the core saved: the key box is empty again.
      this.render(true);
      this.forms.get(a.provider)?.querySelector(`#ai-saved-${a.provider}`)?.classList.remove("hidden");
    } catch (e) {
      const key = form.querySelector<HTMLInputElement>(`#${fieldId(a.provider, "api_key")}`);
      this.showAgentError(a, form, toApiError(e));
      // A rejected key is not kept on screen either.
      if (key) key.value = "";
      if (button) button.disabled = false;
    }
  }

  private showAgentError(a: AiAgentView, form: HTMLFormElement, err: ApiError | null): void {
    for (const [f] of layout(a)) {
      const control = form.querySelector(`#${fieldId(a.provider, f)}`);
      control?.classList.remove("invalid");
      control?.removeAttribute("aria-invalid");
      const slot = form.querySelector(`#${fieldId(a.provider, `err-${f}`)}`);
      if (slot) slot.textContent = "";
    }
    const unplaced: string[] = [];
    for (const fe of err?.fields ?? []) {
      const control = form.querySelector(`#${fieldId(a.provider, fe.field)}`);
      const slot = form.querySelector(`#${fieldId(a.provider, `err-${fe.field}`)}`);
      if (!control || !slot) {
        unplaced.push(tCode("fielderr", fe.code));
        continue;
      }
      control.classList.add("invalid");
      control.setAttribute("aria-invalid", "true");
      slot.textContent = tCode("fielderr", fe.code);
    }
    const top = err && (err.fields.length === 0 ? [tCode("error", err.code)] : unplaced);
    const banner = form.querySelector<HTMLElement>(`#ai-error-${a.provider}`);
    if (banner) {
      banner.textContent = top?.join(" ") ?? "";
      banner.classList.toggle("hidden", !top?.length);
    }
  }

  private async makeDefault(a: AiAgentView): Promise<void> {
    try {
      await this.backend.aiAgentSetDefault(a.id);
      await this.load();
    } catch (e) {
      const form = this.forms.get(a.provider);
      if (form) this.showAgentError(a, form, toApiError(e));
    }
  }

  private policyBlock(p: AiPolicy): HTMLElement {
    const after = p.answer.startsWith("after:") ? p.answer.slice("after:".length) : DEFAULT_AFTER_S;
    const mode = p.answer.startsWith("after:") ? "after" : p.answer;
    const afterBox = h("input", {
      id: "ai-answer-after",
      type: "text",
      inputmode: "numeric",
      class: "ai-seconds",
      value: after,
      "aria-describedby": policyErrId("answer"),
      "aria-label": t("ai.policy.seconds"),
    });
    const afterRow = h(
      "span",
      { id: "ai-answer-after-row", class: `ai-after${mode === "after" ? "" : " hidden"}` },
      t("ai.policy.after_label"),
      afterBox,
      t("ai.policy.seconds"),
    );
    const select = h(
      "select",
      {
        id: "ai-answer",
        disabled: p.answer_overridden,
        onchange: (ev) => afterRow.classList.toggle("hidden", (ev.target as HTMLSelectElement).value !== "after"),
      },
      ANSWERS.map(([value, label]) => h("option", { value, selected: mode === value }, t(label))),
    );
    const hours = p.working_hours;
    const form = h(
      "form",
      { id: "ai-policy", class: "ai-policy", novalidate: true, autocomplete: "off" },
      h("h3", {}, t("ai.policy.title")),
      h("label", { class: "check" }, h("input", { id: "ai-handoff-allowed", type: "checkbox", checked: p.handoff_allowed }), t("ai.policy.handoff")),
      h("div", { class: "inline-field ai-answer-row" }, h("label", { for: "ai-answer" }, t("ai.policy.answer")), select, afterRow),
      p.answer_overridden ? h("div", { id: "ai-answer-overridden", class: "hint" }, t("ai.policy.overridden")) : null,
      h("div", { id: policyErrId("answer"), class: "field-error" }),
      h(
        "fieldset",
        { id: "ai-hours", class: "ai-hours" },
        h("legend", {}, t("ai.policy.hours")),
        h(
          "div",
          { class: "ai-hours-line" },
          h(
            "div",
            { class: "ai-days" },
            DAYS.map(([d, label]) =>
              h("label", { class: "check ai-day" }, h("input", { id: `ai-day-${d}`, type: "checkbox", value: d, checked: hours.days.includes(d) }), t(label)),
            ),
          ),
          h(
            "div",
            { class: "ai-hours-row" },
            h("label", { for: "ai-hours-start" }, t("ai.policy.from")),
            h("input", { id: "ai-hours-start", type: "text", class: "ai-time", value: hours.start, placeholder: "09:00", inputmode: "numeric" }),
            h("label", { for: "ai-hours-end" }, t("ai.policy.to")),
            h("input", { id: "ai-hours-end", type: "text", class: "ai-time", value: hours.end, placeholder: "17:00", inputmode: "numeric" }),
          ),
        ),
        h("div", { id: policyErrId("working_hours.days"), class: "field-error" }),
        h("div", { id: policyErrId("working_hours.start"), class: "field-error" }),
        h("div", { id: policyErrId("working_hours.end"), class: "field-error" }),
        h("div", { class: "hint" }, t("ai.policy.hours_hint")),
      ),
      h("div", { id: "ai-policy-error", class: "banner banner-error hidden", role: "alert" }),
      h(
        "div",
        { class: "ai-actions" },
        h("span", { id: "ai-policy-saved", class: "ai-saved hidden", role: "status" }, t("ai.saved")),
        h("button", { id: "ai-policy-save", class: "btn btn-primary btn-small", type: "submit" }, t("ai.policy.save")),
      ),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.savePolicy(form);
    });
    return form;
  }

  /** The policy the form holds; the answer as the core spells it (`after:N`). */
  private policyDraft(form: HTMLFormElement): AiPolicyDraft {
    const value = (id: string) => form.querySelector<HTMLInputElement | HTMLSelectElement>(`#${id}`)?.value ?? "";
    const mode = value("ai-answer");
    const draft: AiPolicyDraft = {
      handoff_allowed: form.querySelector<HTMLInputElement>("#ai-handoff-allowed")?.checked ?? true,
      working_hours: {
        days: DAYS.map(([d]) => d).filter((d) => form.querySelector<HTMLInputElement>(`#ai-day-${d}`)?.checked),
        start: value("ai-hours-start"),
        end: value("ai-hours-end"),
      },
    };
    // While --ai-answer decides, the saved answer is left as it is.
    if (!this.policy?.answer_overridden) draft.answer = mode === "after" ? `after:${value("ai-answer-after").trim()}` : mode;
    return draft;
  }

  private async savePolicy(form: HTMLFormElement): Promise<void> {
    const button = form.querySelector<HTMLButtonElement>("#ai-policy-save");
    if (button) button.disabled = true;
    this.showPolicyError(form, null);
    form.querySelector("#ai-policy-saved")?.classList.add("hidden");
    try {
      this.policy = await this.backend.aiPolicySet(this.policyDraft(form));
      this.render(true);
      this.el.querySelector("#ai-policy-saved")?.classList.remove("hidden");
    } catch (e) {
      this.showPolicyError(form, toApiError(e));
      if (button) button.disabled = false;
    }
  }

  private showPolicyError(form: HTMLFormElement, err: ApiError | null): void {
    for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
    for (const el of form.querySelectorAll(".invalid")) {
      el.classList.remove("invalid");
      el.removeAttribute("aria-invalid");
    }
    const controls: Record<string, string> = {
      answer: "ai-answer-after",
      "working_hours.start": "ai-hours-start",
      "working_hours.end": "ai-hours-end",
    };
    const unplaced: string[] = [];
    for (const fe of err?.fields ?? []) {
      const slot = form.querySelector(`#${policyErrId(fe.field)}`);
      if (!slot) {
        unplaced.push(tCode("fielderr", fe.code));
        continue;
      }
      slot.textContent = tCode("fielderr", fe.code);
      const control = controls[fe.field] ? form.querySelector(`#${controls[fe.field]}`) : null;
      control?.classList.add("invalid");
      control?.setAttribute("aria-invalid", "true");
    }
    const top = err && (err.fields.length === 0 ? [tCode("error", err.code)] : unplaced);
    const banner = form.querySelector<HTMLElement>("#ai-policy-error");
    if (banner) {
      banner.textContent = top?.join(" ") ?? "";
      banner.classList.toggle("hidden", !top?.length);
    }
  }
}
