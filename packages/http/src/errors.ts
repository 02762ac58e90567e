import { WarrenError } from '@warren/core';

/**
 * An error of `@warren/http` raised in this process (never sent as is over the wire). `code` says
 * which: `WARREN_TOKEN_INVALID` (a token's name, role or expiry), `WARREN_TOKEN_EXISTS` (a live
 * token has that name), `WARREN_HTTP_OPTIONS` (an option of the server is invalid).
 */
export class HttpError extends WarrenError {}
