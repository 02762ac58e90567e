/// <reference lib="dom" />
/** The sign-in view: paste an operator token; the server keeps an httpOnly session cookie. */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, signIn } from '../api.js';

/** The sign-in form. On success the session signal changes and the app shows the fleet. */
export function SignIn(): VNode {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = (e: Event): void => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    signIn(token.trim()).then(
      () => {
        setBusy(false);
        if (location.hash === '#/signin' || location.hash === '') location.hash = '#/fleet';
      },
      (err: unknown) => {
        setBusy(false);
        setError(err instanceof ApiError && err.status === 401 ? 'That token is not valid (unknown, revoked or expired).' : String(err instanceof Error ? err.message : err));
      },
    );
  };
  return html`<main class="signin" data-testid="signin-view">
    <form class="card signin-card" onSubmit=${submit}>
      <div class="brand big"><span class="logo" aria-hidden="true"></span> Warren</div>
      <h1>Sign in</h1>
      <p class="muted">Paste an operator token (<code>warren token create --name you --role operator</code>), or open the sign-in link <code>warren up</code> prints.</p>
      <label for="token">Token</label>
      <input id="token" type="password" autocomplete="off" spellcheck="false" placeholder="wrn_…" required
        data-testid="signin-token" value=${token} onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} />
      ${error !== null && html`<p class="error" role="alert" data-testid="signin-error">${error}</p>`}
      <button class="btn primary" type="submit" data-testid="signin-submit" disabled=${busy || token.trim() === ''}>Sign in</button>
    </form>
  </main>`;
}
