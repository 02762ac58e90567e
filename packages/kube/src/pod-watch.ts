import { Watch } from '@kubernetes/client-node';
import type { CoreV1Api, KubeConfig, V1Pod } from '@kubernetes/client-node';

/** What a {@link PodWatch} reports. Callbacks must not throw. */
export interface PodWatchHandlers {
  /** The pods matching the selector after a (re)list, then each change as the API server sent it. */
  readonly onList: (pods: readonly V1Pod[]) => void;
  readonly onEvent: (type: 'ADDED' | 'MODIFIED' | 'DELETED', pod: V1Pod) => void;
  /** A list or watch request failed; the watch retries after `retryMs`. */
  readonly onError: (error: unknown) => void;
}

/** Options of a {@link PodWatch}. Times in ms, except `timeoutSeconds`. */
export interface PodWatchOptions {
  readonly namespace: string;
  /** A label selector such as `warren.dev/agent=coder-1`. */
  readonly labelSelector: string;
  /** Asks the API server to end each watch request after this many seconds (it is then resumed). */
  readonly timeoutSeconds: number;
  /** Wait before retrying a failed list or watch, in ms. */
  readonly retryMs: number;
}

/**
 * Follows the pods matching a label selector the way client-go's reflector does
 * (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
 * list, then watch from the list's `resourceVersion`; a watch that ends is resumed from the last
 * version seen (events and `BOOKMARK`s); a `410 Gone`/`Expired` (the version is older than the
 * kept history) relists, so no change is lost. `close()` ends it (idempotent).
 */
export class PodWatch {
  private readonly watch: Watch;
  private resourceVersion: string | undefined;
  private controller: AbortController | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    kubeConfig: KubeConfig,
    private readonly core: CoreV1Api,
    private readonly options: PodWatchOptions,
    private readonly handlers: PodWatchHandlers,
  ) {
    this.watch = new Watch(kubeConfig);
  }

  /** Lists and starts watching; resolves once the first list is reported. @throws what the first list throws. */
  async start(): Promise<void> {
    await this.list();
    this.spawn(this.follow());
  }

  /** Stops watching. Idempotent. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.controller?.abort();
    this.controller = undefined;
  }

  /** Runs a step in the background; a failure is reported and retried with a relist. */
  private spawn(step: Promise<void>): void {
    step.catch((error: unknown) => {
      if (this.closed) return;
      this.handlers.onError(error);
      this.retry(true);
    });
  }

  private async list(): Promise<void> {
    const list = await this.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: this.options.labelSelector });
    if (this.closed) return;
    this.resourceVersion = list.metadata?.resourceVersion;
    this.handlers.onList(list.items);
  }

  private retry(relist: boolean): void {
    if (this.closed) return;
    this.retryTimer = setTimeout(() => this.spawn(relist ? this.relist() : this.follow()), this.options.retryMs);
  }

  private async relist(): Promise<void> {
    if (this.closed) return;
    try {
      await this.list();
    } catch (error) {
      if (this.closed) return;
      this.handlers.onError(error);
      this.retry(true);
      return;
    }
    this.spawn(this.follow());
  }

  private async follow(): Promise<void> {
    if (this.closed) return;
    let expired = false;
    let failed = false;
    const done = (error: unknown): void => {
      if (this.closed) return;
      this.controller = undefined;
      if (expired || (error as { statusCode?: number } | null)?.statusCode === 410) {
        this.spawn(this.relist());
      } else if (error !== null && error !== undefined) {
        this.handlers.onError(error);
        this.retry(failed);
      } else {
        this.spawn(this.follow());
      }
    };
    const query = {
      labelSelector: this.options.labelSelector,
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: this.options.timeoutSeconds,
    };
    const path = `/api/v1/namespaces/${encodeURIComponent(this.options.namespace)}/pods`;
    const controller = await this.watch.watch(
      path,
      query,
      (type: string, object: unknown) => {
        if (this.closed) return;
        const version = (object as { metadata?: { resourceVersion?: string } } | null)?.metadata?.resourceVersion;
        if (type === 'ERROR') {
          const code = (object as { code?: number } | null)?.code;
          if (code === 410) expired = true;
          else {
            failed = true;
            this.handlers.onError(new Error(`watch of pods ${this.options.labelSelector}: ${JSON.stringify(object)}`));
          }
          return;
        }
        if (version !== undefined) this.resourceVersion = version;
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.handlers.onEvent(type, object as V1Pod);
      },
      done,
    );
    if (this.closed) controller.abort();
    else this.controller = controller;
  }
}
