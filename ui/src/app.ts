// App state and the glue between screens and the backend. Screens are re-rendered from state; the open dialog is kept.
import { AccountForm } from "./account-form";
import { toApiError, type Backend } from "./backend";
import { h } from "./dom";
import { renderHeader } from "./header";
import { browserLang, resolveLang, setLang } from "./i18n";
import { renderSettings, type SettingsActions } from "./settings";
import type { AccountView, ApiError, DeskStatus, Locale, UiSettings } from "./types";

/** Events after which the header and the list are re-read from the core. */
const REFRESH_ON = new Set(["registration", "accounts_changed", "account_loaded", "account_unloaded", "store_error"]);

export class App {
  private status: DeskStatus | null = null;
  private settings: UiSettings | null = null;
  private confirmDeleteId: number | null = null;
  private listError: ApiError | null = null;
  private langError: ApiError | null = null;
  private form: AccountForm | null = null;
  private refreshQueued = false;
  private readonly view = h("div", { id: "view" });
  private readonly modal = h("div", { id: "modal-root" });

  constructor(private readonly backend: Backend, root: HTMLElement) {
    root.replaceChildren(this.view, this.modal);
  }

  async start(): Promise<void> {
    await this.loadSettings();
    this.render();
    // Subscribe before the first load so no change slips between the two.
    try {
      await this.backend.onEvent((e) => {
        if (REFRESH_ON.has(e.event)) this.queueRefresh();
      });
    } catch (e) {
      console.error("no live updates from the core", e);
    }
    await this.refresh();
  }

  private async loadSettings(): Promise<void> {
    try {
      this.settings = await this.backend.uiSettingsGet();
    } catch {
      this.settings = { locale: this.settings?.locale ?? "system", system_locale: browserLang() };
    }
    setLang(resolveLang(this.settings.locale, this.settings.system_locale));
  }

  private queueRefresh(): void {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    setTimeout(() => {
      this.refreshQueued = false;
      void this.refresh();
    }, 50);
  }

  private async refresh(): Promise<void> {
    try {
      this.status = await this.backend.deskStatus();
    } catch (e) {
      this.listError = toApiError(e);
    }
    if (this.confirmDeleteId !== null && !this.status?.accounts.some((a) => a.id === this.confirmDeleteId)) {
      this.confirmDeleteId = null;
    }
    this.render();
  }

  private render(): void {
    this.view.replaceChildren(
      renderHeader(this.status),
      renderSettings(
        {
          status: this.status,
          loaded: this.status !== null,
          accounts: this.status?.accounts ?? [],
          confirmDeleteId: this.confirmDeleteId,
          error: this.listError,
          locale: this.settings?.locale ?? "system",
          langError: this.langError,
        },
        this.actions,
      ),
    );
  }

  /** Runs a list action; its error shows above the list, success reloads the list. */
  private async act(op: () => Promise<unknown>): Promise<void> {
    this.listError = null;
    try {
      await op();
    } catch (e) {
      this.listError = toApiError(e);
    }
    await this.refresh();
  }

  private openForm(account: AccountView | null): void {
    this.form = new AccountForm(account, (f) => void this.save(f), () => this.closeForm());
    this.modal.replaceChildren(this.form.el);
    this.form.focus();
  }

  private closeForm(): void {
    this.form?.clearPassword();
    this.form = null;
    this.modal.replaceChildren();
  }

  private async save(form: AccountForm): Promise<void> {
    form.setBusy(true);
    form.showError(null);
    try {
      const id = form.accountId;
      const draft = form.draft();
      if (id === null) await this.backend.accountCreate(draft);
      else await this.backend.accountUpdate(id, draft);
      this.closeForm();
      this.listError = null;
      await this.refresh();
    } catch (e) {
      form.showError(toApiError(e));
      form.setBusy(false);
    }
  }

  private async setLocale(locale: Locale): Promise<void> {
    this.langError = null;
    try {
      await this.backend.uiSettingsSetLocale(locale);
      await this.loadSettings();
    } catch (e) {
      // Still switch for this session; the banner says it was not saved.
      this.langError = toApiError(e);
      this.settings = { locale, system_locale: this.settings?.system_locale ?? browserLang() };
      setLang(resolveLang(locale, this.settings.system_locale));
    }
    this.render();
  }

  private readonly actions: SettingsActions = {
    add: () => this.openForm(null),
    edit: (a) => this.openForm(a),
    askDelete: (id) => {
      this.confirmDeleteId = id;
      this.render();
    },
    remove: (id) => void this.act(() => this.backend.accountDelete(id)),
    setActive: (id, active) => void this.act(() => this.backend.accountSetActive(id, active)),
    makeDefault: (id) => void this.act(() => this.backend.accountSetDefault(id)),
    setLocale: (locale) => void this.setLocale(locale),
  };
}
