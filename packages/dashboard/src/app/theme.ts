/// <reference lib="dom" />
/**
 * Light and dark: the system's (`prefers-color-scheme`) unless the person chose one with the
 * toggle, kept in localStorage and set as `<html data-theme>`, which the style sheet reads.
 */
import { signal } from '@preact/signals';

/** A choice of theme; `system` follows `prefers-color-scheme`. */
export type Theme = 'light' | 'dark' | 'system';

const THEME_KEY = 'warren.theme';

function storedTheme(): Theme {
  try {
    const t = localStorage.getItem(THEME_KEY);
    return t === 'light' || t === 'dark' ? t : 'system';
  } catch {
    return 'system';
  }
}

/** The theme chosen now (charts redraw with its colours when it changes). */
export const theme = signal<Theme>(storedTheme());

/** Sets the theme on the page and remembers it. */
export function applyTheme(t: Theme): void {
  theme.value = t;
  if (t === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  try {
    if (t === 'system') localStorage.removeItem(THEME_KEY);
    else localStorage.setItem(THEME_KEY, t);
  } catch {
    // Storage may be disabled; the choice then lasts for the page.
  }
}

/** Switches between light and dark, starting from what is shown now. */
export function toggleTheme(): void {
  const dark = theme.value === 'dark' || (theme.value === 'system' && matchMedia('(prefers-color-scheme: dark)').matches);
  applyTheme(dark ? 'light' : 'dark');
}
