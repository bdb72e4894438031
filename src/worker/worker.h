/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  Declarations shared by the notification worker's files:
 *	    worker.c       its life: start, wake-ups, rounds, failures, SIGTERM
 *	    deliver.c      a round of deliveries: claim, plan, send, record
 *	    im_window.c    rate windows kept across rounds
 *	    im_token.c     app access tokens kept across rounds
 *	    worker_xact.c  transactions and contained errors
 *	    directory.c    directory sync, a slice per round
 *
 *-------------------------------------------------------------------------
 */
#ifndef CRM_WORKER_H
#define CRM_WORKER_H

#include "crm.h"

#include "datatype/timestamp.h"

/* settings (worker.c; all reloadable) */
extern int	crm_im_poll_interval;
extern int	crm_im_batch_size;
extern int	crm_im_request_timeout;
extern int	crm_im_retry_delay;
extern int	crm_im_max_attempts;

/* worker_xact.c */
extern MemoryContext crm_worker_xact_init(void);
extern bool crm_worker_stopping(void);
extern void crm_worker_begin(const char *what);
extern void crm_worker_end(void);
extern void crm_worker_between(void);
extern bool crm_worker_attempt(void (*fn) (void *), void *arg, ErrorData **error);
extern bool crm_worker_subxact(void (*fn) (void *), void *arg, ErrorData **error);

/* im_window.c: the times of the last requests within span, oldest first */
typedef struct Window
{
	int			limit;
	TimestampTz span;
	TimestampTz *times;			/* ring of limit entries */
	int			head;
	int			count;
} Window;

typedef struct ChannelWindows
{
	int64		id;				/* hash key */
	Window		minute;
	Window		second;			/* limit 0: none */
	TimestampTz blocked_until;	/* a DingTalk robot's 10-minute penalty */
} ChannelWindows;

typedef struct RecipientWindow
{
	char		key[128];		/* channel id ":" IM id */
	Window		window;
	uint64		round;			/* the round "planned" counts for */
	int			planned;
} RecipientWindow;

extern void crm_window_resize(Window *w, int limit, TimestampTz span);
extern int	crm_window_room(Window *w, TimestampTz now);
extern void crm_window_add(Window *w, TimestampTz t);
extern TimestampTz crm_window_opens(Window *w);
extern void crm_windows_init(void);
extern ChannelWindows *crm_channel_windows(int64 channel_id, int rate, bool feishu_robot);
extern RecipientWindow *crm_recipient_window(int64 channel_id, const char *platform, const char *im_id,
											 uint64 round);
extern void crm_windows_load_history(void);

/* im_token.c */
typedef struct ImApp
{
	int64		channel_id;
	const char *name;
	const char *platform;
	const char *app_id;
	const char *app_secret;
	const char *api_base;
} ImApp;

typedef struct ImTokenResult
{
	bool		done;			/* answered (false: the worker is stopping) */
	bool		ok;				/* a token was given, and is kept */
	ImOutcome	outcome;		/* else what the answer means, */
	char	   *code;			/* the platform's code */
	char	   *message;		/* and words */
} ImTokenResult;

extern const char *crm_im_token(const ImApp *app, bool fresh);
extern void crm_im_tokens_fetch(const ImApp *apps, int n, long timeout_ms, ImTokenResult *results);
extern const char *crm_im_app_token(const ImApp *app, bool renew, long timeout_ms, char **error);

/* deliver.c */
extern long crm_deliver_round(MemoryContext cxt, bool *active);
extern void crm_deliver_after_error(void);
extern void crm_deliver_init(void);

/* directory.c */
extern bool crm_directory_round(void);

#endif							/* CRM_WORKER_H */
